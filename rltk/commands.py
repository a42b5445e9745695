"""Training subcommands: ``rltk sft``, ``rltk grpo``, ``rltk plot``, ``rltk demo``.

Each is a thin layer over the library (:func:`rltk.sft.train_sft`, :func:`rltk.grpo.run_job`,
:func:`rltk.plot.plot_run`): parse, run with a live view, print a short table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

# OpenMP threads that spin at barriers (the default) are starved when another busy process shares the
# cores: measured here, a learner step took 50x longer. Sleeping at barriers costs ~nothing when alone.
# (Read when torch loads OpenMP, so it must be set before torch is imported.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "arithmetic" / "grpo.yaml"


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="LoRA/QLoRA SFT on chat input/output pairs; writes a peft adapter folder",
                       description="Supervised fine-tuning (loss on completion tokens only). "
                                   "Example: rltk sft examples/arithmetic/sft.yaml sft.steps=20")
    p.add_argument("config", help="YAML config (see examples/arithmetic/sft.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. sft.lr=1e-4")
    p.set_defaults(func=cmd_sft)

    p = sub.add_parser("grpo", help="GRPO (with optional SFT warm start and held-out evals before/after)",
                       description="Run a GRPO job. Example: rltk grpo examples/arithmetic/grpo.yaml grpo.steps=10")
    p.add_argument("config", help="YAML config (see examples/arithmetic/grpo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. grpo.beta=0.02")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.set_defaults(func=cmd_grpo)

    p = sub.add_parser("plot", help="draw a run's curves (reward, accuracy, KL, length) to a PNG")
    p.add_argument("run_dir", help="a run folder (holds metrics.jsonl)")
    p.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("demo", help="the main job: SmolLM2-135M, eval -> SFT -> eval -> GRPO -> eval, on this machine",
                       description=f"Runs {DEMO_CONFIG.relative_to(DEMO_CONFIG.parents[2])} (same as rltk grpo on it).")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. grpo.steps=5")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.set_defaults(func=cmd_demo)


def cmd_sft(args: argparse.Namespace) -> int:
    from rltk.core.config import load_config
    from rltk.sft import SFTJobConfig, train_sft

    cfg = load_config(SFTJobConfig, args.config, args.overrides)
    result = train_sft(cfg)
    last = result.history[-1] if result.history else {}
    first = result.history[0] if result.history else {}
    _print_table("SFT", [("steps", str(len(result.history))), ("loss", f"{_f(first.get('loss'))} -> {_f(last.get('loss'))}"),
                         ("adapter", str(result.adapter_dir)), ("run", str(result.run_dir))])
    return 0


def cmd_grpo(args: argparse.Namespace) -> int:
    from rltk.grpo import load_job_config, run_job

    cfg = load_job_config(args.config, args.overrides)
    result = run_job(cfg, resume=args.resume)
    print_job(result.summary)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rltk.core.errors import UserError

    if not DEMO_CONFIG.is_file():
        raise UserError(f"the demo config {DEMO_CONFIG} is missing (rltk demo runs from a source checkout)")
    args.config = str(DEMO_CONFIG)
    return cmd_grpo(args)


def cmd_plot(args: argparse.Namespace) -> int:
    from rltk.plot import plot_run

    path = plot_run(args.run_dir, args.out)
    _print_table("plot", [("png", str(path))])
    return 0


# ----------------------------------------------------------------------------- output


def _f(x: Any, spec: str = ".4f") -> str:
    return "–" if x is None else format(x, spec)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def print_job(summary: dict[str, Any]) -> None:
    """The job's table: held-out accuracy, format rate and sampled pass@1 per stage, then the tests."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    stages = list(summary.get("accuracy", {}))
    if stages:
        table = Table(title=f"held-out eval ({summary.get('n_eval_items')} items, seed {summary.get('seed')})")
        table.add_column("stage")
        table.add_column("accuracy (greedy)", justify="right")
        table.add_column("format", justify="right")
        table.add_column(f"pass@1 ({summary.get('eval_samples')} samples)", justify="right")
        for s in stages:
            table.add_row(s, _pct(summary["accuracy"].get(s)), _pct(summary["format_rate"].get(s)),
                          _pct(summary["pass1_sampled"].get(s)))
        console.print(table)
    for key in ("verdict_greedy", "verdict_pass1"):
        if summary.get(key):
            console.print(f"{'greedy' if key.endswith('greedy') else 'pass@1'}: {summary[key]}")
    console.print(f"run {summary.get('run_dir')} · adapter {summary.get('adapter')} · {summary.get('grpo_steps')} GRPO steps · "
                  f"wall {summary.get('wall_seconds', 0) / 60:.1f} min")
