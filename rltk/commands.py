"""The handlers of rltk's own subcommands: ``rltk info``, ``rltk sft``, ``rltk grpo``, ``rltk plot``,
``rltk demo``, ``rltk export`` (their parsers are in :mod:`rltk.cli`).

Each is a thin layer over the library (:func:`rltk.sft.train_sft`, :func:`rltk.grpo.run_job`,
:func:`rltk.plot.plot_run`): parse, run with a live view, print a short table.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from rltk import __version__
from rltk.chat import ChatSession, load_chat_model, repl
from rltk.core.errors import UserError
from rltk.export import export
from rltk.grpo import load_job_config, run_job
from rltk.policy import ALIASES, cache_dir, default_device, is_cached
from rltk.plot import plot_run
from rltk.sft import load_sft_config, train_sft

# rltk/examples links to the repo's examples/ and is packaged with the wheel (pyproject package-data)
DEMO_CONFIG = Path(__file__).parent / "examples" / "arithmetic" / "grpo.yaml"


def cmd_info(args: argparse.Namespace) -> int:
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


def _ray_overrides(args: argparse.Namespace) -> list[str]:
    """``--workers N`` / ``--ray-address ADDR``: shorthands for the ``distributed.*`` overrides."""
    out = []
    if getattr(args, "workers", None) is not None:
        out.append(f"distributed.workers={args.workers}")
    if getattr(args, "ray_address", None) is not None:
        out.append(f"distributed.ray_address={args.ray_address}")
    return out


def cmd_sft(args: argparse.Namespace) -> int:
    cfg = load_sft_config(args.config, args.overrides)
    result = train_sft(cfg)
    last = result.history[-1] if result.history else {}
    first = result.history[0] if result.history else {}
    _print_table("SFT", [("steps", str(len(result.history))), ("loss", f"{_f(first.get('loss'))} -> {_f(last.get('loss'))}"),
                         ("adapter", str(result.adapter_dir)), ("run", str(result.run_dir))])
    return 0


def cmd_grpo(args: argparse.Namespace) -> int:
    cfg = load_job_config(args.config, [*args.overrides, *_ray_overrides(args)])
    result = run_job(cfg, resume=args.resume)
    print_job(result.summary)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not DEMO_CONFIG.is_file():
        raise UserError(f"the demo config {DEMO_CONFIG} is missing (reinstall rltk: the examples are part of the package)")
    args.config = str(DEMO_CONFIG)
    return cmd_grpo(args)


def cmd_plot(args: argparse.Namespace) -> int:
    path = plot_run(args.run_dir, args.out)
    _print_table("plot", [("png", str(path))])
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    if args.dtype is not None and args.format != "hf":
        raise UserError(f"--dtype applies to --format hf (this export is {args.format})")
    if args.gguf_type is not None and args.format != "gguf":
        raise UserError(f"--gguf-type applies to --format gguf (this export is {args.format})")
    console = Console()
    with console.status(f"exporting {args.source} as {args.format}"):
        r = export(args.source, args.out, args.format, dtype=args.dtype or "bf16", gguf_type=args.gguf_type or "f16",
                   force=args.force, base=args.base)
    table = Table(title=f"rltk export ({r.format})")
    for col in ("format", "path", "size on disk", "load time"):
        table.add_column(col, justify="right" if col in ("size on disk", "load time") else "left")
    table.add_row(f"{r.format} ({r.detail})", str(r.model_file), f"{r.size_bytes / 1e6:.1f} MB",
                  f"{r.load_seconds:.2f} s")
    console.print(table)
    console.print("size: the whole folder; load time: transformers from_pretrained of it, in this process (file cache "
                  "warm)" + (", GGUF dequantized to fp32" if r.format == "gguf" else ""), highlight=False)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be at least 1 (got {args.max_new_tokens})")
    if args.temperature < 0 or not 0 < args.top_p <= 1:
        raise UserError("--temperature must be >= 0 and --top-p in (0, 1]")
    session = ChatSession(load_chat_model(args.model, args.adapter, args.quant), system=args.system,
                          max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    if args.prompt is not None:
        session.ask(args.prompt)
        return 0
    return repl(session)


# ----------------------------------------------------------------------------- output


def _f(x: Any, spec: str = ".4f") -> str:
    return "–" if x is None else format(x, spec)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _print_table(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False)
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def _print_task_metrics(console: Console, summary: dict[str, Any], stages: list[str]) -> None:
    """The task's own metrics per stage (mean and 95% interval, greedy), then each paired comparison."""
    per = summary.get("task_metrics") or {}
    if not per:
        return
    table = Table(title="task metrics (greedy, 95% CI)")
    table.add_column("metric")
    for s in stages:
        table.add_column(s, justify="right")
    for name, by_stage in per.items():
        cells = []
        for s in stages:
            v = by_stage.get(s)
            cells.append("–" if v is None else f"{v['mean']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]")
        table.add_row(name, *cells)
    console.print(table)
    for key in [k for k in summary if k.startswith("task_metric_verdicts_")]:
        for metric, verdict in summary[key].items():
            console.print(f"{metric}: {verdict}", highlight=False)


def print_job(summary: dict[str, Any]) -> None:
    """The job's table: held-out accuracy, format rate and sampled pass@1 per stage, then the tests."""
    console = Console()
    stages = list(summary.get("accuracy", {}))
    if stages:
        graded = "score" in summary  # a graded task (e.g. legal_summary): mean item score, not accuracy
        table = Table(title=f"held-out eval ({summary.get('n_eval_items')} items, seed {summary.get('seed')})")
        table.add_column("stage")
        table.add_column("score (greedy)" if graded else "accuracy (greedy)", justify="right")
        table.add_column("format", justify="right")
        table.add_column(f"{'score' if graded else 'pass@1'} ({summary.get('eval_samples')} samples)", justify="right")
        reasoning = [(k, t) for k, t in (("reasoning_validity", "valid reasoning"), ("lucky_answers", "lucky"),
                                         ("reasoning_validity_sampled", "valid (sampled)")) if k in summary]
        for _, title in reasoning:
            table.add_column(title, justify="right")
        first, second = ("score", "score_sampled") if graded else ("accuracy", "pass1_sampled")
        for s in stages:
            table.add_row(s, _pct(summary[first].get(s)), _pct(summary["format_rate"].get(s)),
                          _pct(summary[second].get(s)), *(_pct(summary[k].get(s)) for k, _ in reasoning))
        console.print(table)
        _print_task_metrics(console, summary, stages)
    for key in ("verdict_greedy", "verdict_pass1", "verdict_reasoning_validity_sampled", "verdict_lucky_answers_sampled"):
        if summary.get(key):
            name = key.removeprefix("verdict_").replace("_", " ").replace("pass1", "pass@1")
            console.print(f"{name}: {summary[key]}", highlight=False)
    for name, row in summary.get("extra", {}).items():
        accs = ", ".join(f"{s} {_pct(a)}" for s, a in row["accuracy"].items())
        console.print(f"{name} ({row['n_items']} items, greedy): {accs}" + (f"; {row['verdict']}" if row.get("verdict") else ""),
                      highlight=False)
    console.print(f"run {summary.get('run_dir')} · adapter {summary.get('adapter')} · {summary.get('grpo_steps')} GRPO steps · "
                  f"wall {summary.get('wall_seconds', 0) / 60:.1f} min")
