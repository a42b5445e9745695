"""The ``rltk`` command. Each package adds its own subcommands through ``add_parsers``.

A subcommand's handler is named as a ``"module:function"`` string (``set_defaults(func=...)``) and
imported only when that subcommand runs, so ``rltk --help`` does not load torch; the parser modules
themselves stay light. User errors (:class:`rltk.core.errors.UserError`) print one line and exit 2;
nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Sequence

from rltk import __version__
from rltk.core.errors import UserError
from rltk.core.registry import load_object

# modules that contribute subcommands: each defines add_parsers(subparsers)
COMMAND_MODULES = ("rltk.commands", "rewards.cli", "evals.cli")


def resolve_handler(func: Any) -> Callable[[argparse.Namespace], Any]:
    """A parser's handler: a callable, or ``"module:function"`` imported now (the subcommand runs)."""
    return load_object(func, kind="command handler") if isinstance(func, str) else func


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rltk",
        description="Reward- and evaluation-centric RL for language models: GRPO on QLoRA, rewards you can test, evals with honest statistics.",
    )
    parser.add_argument("--version", action="version", version=f"rltk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = sub.add_parser("info", help="versions, device, cache folder, embedded model status")
    info.set_defaults(func=cmd_info)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def cmd_info(args: argparse.Namespace) -> int:
    import importlib.metadata as md

    import torch
    from rich.console import Console
    from rich.table import Table

    from rltk.models import ALIASES, cache_dir, default_device, is_cached

    table = Table(title=f"rltk {__version__}", show_header=False)
    for pkg in ("torch", "transformers", "peft", "bitsandbytes", "ray", "sympy", "datasets"):
        try:
            table.add_row(pkg, md.version(pkg))
        except md.PackageNotFoundError:
            table.add_row(pkg, "[red]not installed[/red]")
    dev = default_device()
    table.add_row("device", f"{dev}" + (f" ({torch.cuda.get_device_name()})" if dev.type == "cuda" else f" ({os.cpu_count()} cores)"))
    table.add_row("cache", str(cache_dir()))
    for alias, emb in ALIASES.items():
        state = "missing package" if emb.gguf_path() is None else ("cached" if is_cached(alias) else "not cached yet (first load converts, ~20 s)")
        table.add_row(f"model {alias}", state)
    Console().print(table)
    return 0


def quiet_libraries() -> None:
    """CLI output is our tables and progress bars: silence the libraries' per-load chatter (transformers'
    weight-loading bars and notices, bitsandbytes' optional-kernel notice, deprecation warnings)."""
    import logging
    import warnings

    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|bitsandbytes)\.")
    if "transformers" in sys.modules:  # else the environment above is read when it is imported
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    quiet_libraries()
    try:
        return int(resolve_handler(args.func)(args) or 0)
    except UserError as e:
        print(f"rltk: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("rltk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
