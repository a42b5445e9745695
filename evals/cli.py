"""``rltk eval`` (run a task), ``rltk eval compare A.json B.json`` and ``rltk eval tasks``."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from rltk.core.errors import UserError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a model on a task (accuracy with CI, pass@k); 'eval compare A.json B.json' tests a difference",
        description=(
            "Evaluate a model on a task: rltk eval --task arithmetic --limit 200. "
            "Compare two result files of the same items: rltk eval compare A.json B.json. "
            "List tasks: rltk eval tasks."
        ),
    )
    p.add_argument("--task", help="built-in task (rltk eval tasks), a task YAML file, or module:attr")
    p.add_argument("--data", help="local rows file (.jsonl/.json/.tsv/.csv) instead of the task's default source")
    p.add_argument("--task-arg", action="append", default=[], metavar="KEY=VALUE", help="option of a built-in task, e.g. digits=3 (repeatable)")
    p.add_argument("--model", default="smollm2-135m", help="alias, HF folder, .gguf file or hub id (default: smollm2-135m)")
    p.add_argument("--adapter", help="LoRA adapter folder (peft) to evaluate on top of the model")
    p.add_argument("--quant", default="none", choices=("none", "nf4", "int8"), help="base model quantization (default: none)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"),
                   help="weights of an unquantized model: auto = bf16 (fastest for generation on CPU and GPU), "
                   "fp32 = fp32 weights under bf16 autocast, as in training")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--limit", type=int, help="evaluate the first N items (after --shuffle)")
    p.add_argument("--shuffle", action="store_true", help="take a seeded random subset with --limit instead of the first rows")
    p.add_argument("--seed", type=int, default=0, help="sampling, shuffling and few-shot seed (default: 0)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences decoded together (default: 32)")
    p.add_argument("--max-new-tokens", type=int, help="default: the task's (arithmetic 64, gsm8k 256, math500 512)")
    p.add_argument("--samples", type=int, default=1, help="completions per item (>1: sampled, pass@k and maj@k)")
    p.add_argument("--temperature", type=float, help="default: 0 (greedy) for 1 sample, 1.0 for several")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--k", help="comma-separated ks for pass@k / maj@k (default: 1,2,4,...,samples)")
    p.add_argument("--few-shot", type=int, default=0, metavar="K", help="K demonstrations before each item (default: 0, zero-shot)")
    p.add_argument("--few-shot-data", help="rows to draw demonstrations from (default: the task's train split if it has one)")
    p.add_argument("--output", "-o", help="result JSON (default: runs/eval/TASK-MODEL-TIME.json)")
    p.add_argument("--markdown", help="also write a Markdown report here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)
    esub = p.add_subparsers(dest="eval_command", metavar="{compare,tasks}")
    c = esub.add_parser("compare", help="paired test of run B against run A on the same items")
    c.add_argument("a", help="result JSON of the baseline run (A)")
    c.add_argument("b", help="result JSON of the candidate run (B)")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdict (default: 0.05)")
    c.add_argument("--resamples", type=int, default=10_000, help="paired bootstrap resamples (default: 10000)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--markdown", help="write a Markdown report here")
    c.add_argument("--output", "-o", help="write the comparison as JSON here")
    c.set_defaults(func=cmd_compare)
    t = esub.add_parser("tasks", help="list the built-in tasks")
    t.set_defaults(func=cmd_tasks)


def _parse_ks(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise UserError(f"--k values must be >= 1, got {text!r}")
    return ks


def _task_args(items: list[str]) -> dict:
    from rltk.core.config import parse_override

    out = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) != 1:
            raise UserError(f"--task-arg {item!r}: use KEY=VALUE with a plain key")
        out[keys[0]] = value
    return out


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(s).name if ("/" in s and Path(s).exists()) else s).strip("_")[:60] or "model"


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from evals.generation import GenerationSettings
    from evals.report import per_class_table, result_markdown, result_table
    from evals.run import _resolve_temperature, evaluate
    from evals.tasks import get_task

    if not args.task:
        raise UserError("rltk eval needs --task (see: rltk eval tasks), or a subcommand: compare, tasks")
    console = Console()
    # everything that can be wrong with the input is checked before the model loads
    task = get_task(args.task, **_task_args(args.task_arg))
    ks = _parse_ks(args.k)
    temperature = _resolve_temperature(args.samples, args.temperature)
    GenerationSettings(
        max_new_tokens=args.max_new_tokens or task.max_new_tokens,
        temperature=temperature,
        top_p=args.top_p,
        n_samples=args.samples,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    for k in ks or []:
        if k > args.samples:
            raise UserError(f"pass@{k} needs at least {k} samples per item, got --samples {args.samples} (lower --k or raise --samples)")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if args.few_shot < 0:
        raise UserError(f"--few-shot must be >= 0, got {args.few_shot}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    rows = task.load(args.data)
    task.check_rows(rows)

    import torch

    from rltk.models import load_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    with console.status(f"loading {args.model}" + (f" + {args.adapter}" if args.adapter else "")):
        policy = load_policy(args.model, quant=args.quant, adapter=args.adapter, device=args.device, trainable=False)
    dtype = "bf16" if args.dtype in ("auto", "bf16") and args.quant == "none" else ("fp32+autocast" if args.quant == "none" else f"{args.quant}")
    if dtype == "bf16":
        policy.model.to(torch.bfloat16)
    result = evaluate(
        policy,
        task,
        rows=rows,
        data=args.data,
        limit=args.limit,
        shuffle=args.shuffle,
        n_samples=args.samples,
        temperature=temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        seed=args.seed,
        ks=ks,
        few_shot=args.few_shot,
        few_shot_data=args.few_shot_data,
        progress=not args.no_progress,
        meta={"adapter": args.adapter, "device": str(policy.device), "dtype": dtype, "threads": torch.get_num_threads(),
              "command": "rltk eval"},
    )
    out = args.output or f"runs/eval/{task.name}-{_slug(args.model)}{'-' + _slug(args.adapter) if args.adapter else ''}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path = result.save(out)
    console.print(result_table(result))
    pc = per_class_table(result)
    if pc is not None:
        console.print(pc)
    if args.markdown:
        Path(args.markdown).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).expanduser().write_text(result_markdown(result), encoding="utf-8")
        console.print(f"report: {args.markdown}")
    console.print(f"results: {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from evals.compare import compare
    from evals.report import comparison_markdown, comparison_table
    from evals.run import load_result

    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.resamples < 100:
        raise UserError(f"--resamples must be >= 100, got {args.resamples}")
    a, b = load_result(args.a), load_result(args.b)
    c = compare(a, b, alpha=args.alpha, n_resamples=args.resamples, seed=args.seed)
    console = Console()
    console.print(comparison_table(c, a_label=f"A {args.a}", b_label=f"B {args.b}"))
    console.print(c.verdict, style="bold", highlight=False)
    if args.markdown:
        Path(args.markdown).expanduser().write_text(comparison_markdown(c, a, b), encoding="utf-8")
    if args.output:
        Path(args.output).expanduser().write_text(json.dumps(c.to_dict(), indent=1) + "\n", encoding="utf-8")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from evals.tasks import TASKS, get_task

    table = Table(title="eval tasks", title_justify="left")
    table.add_column("task", style="bold")
    table.add_column("what")
    table.add_column("scorer")
    for name in TASKS:
        t = get_task(name)
        table.add_row(name, t.description, ", ".join(s.name.rpartition(":")[2] for s in t.rewards))
    Console().print(table)
    return 0
