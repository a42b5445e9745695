"""The ``rltk`` command. Each package adds its own subcommands through ``add_parsers``.

A subcommand's handler is named as a ``"module:function"`` string (``set_defaults(func=...)``) and
imported only when that subcommand runs, so ``rltk --help`` does not load torch; the parser modules
themselves stay light. User errors (:class:`rltk.core.errors.UserError`) print one line and exit 2;
nothing else is caught.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Any, Callable, Sequence

# OpenMP threads that spin at barriers (the default) are starved when another busy process shares the
# cores: measured here, a learner step took 50x longer. Sleeping at barriers costs ~nothing when alone.
# (Read when torch loads OpenMP, so it is set here, before any subcommand imports torch.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from evals import cli as evals_cli  # noqa: E402  (parsers only: light modules)
from rewards import cli as rewards_cli  # noqa: E402
from rltk import __version__  # noqa: E402
from rltk.core.errors import UserError  # noqa: E402
from rltk.core.registry import load_object  # noqa: E402

# filesystem errors that mean "the path you gave cannot be used" (one line, exit 2); others are bugs (traceback)
USER_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOENT,
               errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY, errno.EMFILE, errno.ELOOP}


def describe_os_error(e: OSError) -> str:
    """``cannot write runs/x/metrics.jsonl: No space left on device`` — the path and the reason, one line."""
    what = f"cannot use {e.filename}" if e.filename is not None else "a file could not be written"
    extra = f" -> {e.filename2}" if e.filename2 is not None else ""
    hint = " (free some disk space; checkpoints already written are intact)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{what}{extra}: {e.strerror or type(e).__name__}{hint}"


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
    info.set_defaults(func="rltk.commands:cmd_info")
    add_training_parsers(sub)
    rewards_cli.add_parsers(sub)
    evals_cli.add_parsers(sub)
    return parser


def add_training_parsers(sub: argparse._SubParsersAction) -> None:
    """``rltk sft``, ``rltk grpo``, ``rltk plot``, ``rltk demo``, ``rltk export``, ``rltk chat`` (handlers in :mod:`rltk.commands`)."""
    p = sub.add_parser("sft", help="LoRA/QLoRA SFT on chat input/output pairs; writes a peft adapter folder",
                       description="Supervised fine-tuning (loss on completion tokens only). "
                                   "Example: rltk sft examples/arithmetic/sft.yaml sft.steps=20")
    p.add_argument("config", help="YAML config (see examples/arithmetic/sft.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. sft.lr=1e-4")
    p.set_defaults(func="rltk.commands:cmd_sft")

    p = sub.add_parser("grpo", help="GRPO (with optional SFT warm start and held-out evals before/after)",
                       description="Run a GRPO job. Example: rltk grpo examples/arithmetic/grpo.yaml grpo.steps=10")
    p.add_argument("config", help="YAML config (see examples/arithmetic/grpo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. grpo.beta=0.02")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    _add_ray_flags(p)
    p.set_defaults(func="rltk.commands:cmd_grpo")

    p = sub.add_parser("plot", help="draw a run's curves (reward, accuracy, KL, length) to a PNG")
    p.add_argument("run_dir", help="a run folder (holds metrics.jsonl)")
    p.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    p.set_defaults(func="rltk.commands:cmd_plot")

    p = sub.add_parser("demo", help="the main job: SmolLM2-135M, eval -> SFT -> eval -> GRPO -> eval, on this machine",
                       description="Runs examples/arithmetic/grpo.yaml (same as rltk grpo on it).")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. grpo.steps=5")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    _add_ray_flags(p)
    p.set_defaults(func="rltk.commands:cmd_demo")

    p = sub.add_parser("export", help="merge a run's adapter into its base and write it for deployment (hf, nf4, gguf)",
                       description="Merge the adapter of a run folder (or a peft adapter folder) into its base model "
                                   "and write a standalone model: hf (transformers folder), nf4 (bitsandbytes 4-bit), "
                                   "gguf (llama.cpp / Ollama, with a Modelfile). Prints size on disk and load time. "
                                   "Example: rltk export runs/grpo-20260101-120000 --out deploy/gguf --format gguf")
    p.add_argument("source", metavar="RUN_DIR_OR_ADAPTER", help="a run folder (holds adapter/) or a peft adapter folder")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (must be absent or empty)")
    p.add_argument("--format", default="hf", metavar="FMT", help="hf (default), nf4 or gguf")
    p.add_argument("--dtype", metavar="DTYPE", help="hf only: bf16 (default), fp16 or fp32")
    p.add_argument("--gguf-type", metavar="TYPE", help="gguf only: f16 (default) or q8_0")
    p.add_argument("--base", metavar="MODEL", help="the base model to merge into (default: the one the adapter names)")
    p.add_argument("--force", action="store_true", help="replace DIR when it is not empty")
    p.set_defaults(func="rltk.commands:cmd_export")

    p = sub.add_parser("chat", help="talk to a model (an export, alias, hub id, .gguf, run or adapter folder), streamed",
                       description="A terminal chat through the model's chat template, the answer streamed token by "
                                   "token. At the prompt: /reset forgets the conversation, /exit or Ctrl-D leaves. "
                                   "Example: rltk chat deploy/hf --system 'Be brief.'  or  "
                                   "rltk chat smollm2-135m --adapter runs/grpo-20260101-120000 --prompt 'What is 12 + 30?'")
    p.add_argument("model", metavar="MODEL", help="alias, HF folder, hub id, .gguf file, run folder or adapter folder")
    p.add_argument("--adapter", metavar="A", help="a peft adapter folder (or run folder) to load on MODEL")
    p.add_argument("--system", metavar="TEXT", help="the system message")
    p.add_argument("--prompt", metavar="TEXT", help="answer this once and exit (for scripts)")
    p.add_argument("--max-new-tokens", type=int, default=256, metavar="N", help="answer length cap (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, metavar="T", help="0 (default): greedy; above 0: sampled")
    p.add_argument("--top-p", type=float, default=1.0, metavar="P", help="nucleus sampling when --temperature > 0")
    p.add_argument("--quant", default="none", metavar="Q", help="load the base as none (default), nf4 or int8")
    p.set_defaults(func="rltk.commands:cmd_chat")


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, metavar="N", help="rollout workers as Ray actors (= distributed.workers=N; 0: one process)")
    p.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster: auto or HOST:PORT (= distributed.ray_address=ADDR)")




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


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args``, also taking ``key=value`` overrides after a flag (``rltk grpo C --workers 8 k=v``:
    argparse alone stops collecting a positional list at the first flag)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    quiet_libraries()
    try:
        return int(resolve_handler(args.func)(args) or 0)
    except UserError as e:
        print(f"rltk: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        if e.errno not in USER_ERRNOS:
            raise
        print(f"rltk: error: {describe_os_error(e)}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("rltk: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
