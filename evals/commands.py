"""The handlers of ``rltk eval``, ``rltk eval compare`` and ``rltk eval tasks`` (their parsers are in
:mod:`evals.cli`; this module, with torch and the model loader, is imported only when one runs)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from evals.compare import compare
from evals.reasoning import compare_reasoning
from evals.task_metrics import compare_task_metrics
from evals.items import check_limit
from evals.report import comparison_markdown, comparison_table, per_class_table, result_markdown, result_table
from evals.result import EvalResult, load_result
from evals.run import check_ks, decode_settings, evaluate
from evals.tasks import TASKS, Task, get_task
from rltk.core.config import parse_override
from rltk.core.errors import UserError
from rltk.core.rows import Rows
from rltk.core.templates import fill, template_fields
from rltk.policy import compute_dtype, dense_policy, load_policy, read_prompt


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
    out = {}
    for item in items:
        keys, value = parse_override(item)
        if len(keys) != 1:
            raise UserError(f"--task-arg {item!r}: use KEY=VALUE with a plain key")
        out[keys[0]] = value
    return out


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(s).name if ("/" in s and Path(s).exists()) else s).strip("_")[:60] or "model"


def _checked_inputs(args: argparse.Namespace) -> tuple[Task, list[int] | None, float]:
    """The task, the ks and the temperature, after every check that needs no model (bad input
    fails in a second, not after the model loaded)."""
    task = get_task(args.task, **_task_args(args.task_arg))
    ks = _parse_ks(args.k)
    settings = decode_settings(task, n_samples=args.samples, temperature=args.temperature, top_p=args.top_p,
                               max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, seed=args.seed,
                               decode_threads=args.decode_threads)
    check_ks(ks or [], args.samples)
    check_limit(args.limit)
    if args.few_shot < 0:
        raise UserError(f"--few-shot must be >= 0, got {args.few_shot}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    return task, ks, settings.temperature


def _prompt_for(task: Task, args: argparse.Namespace, rows: Rows, console: Console) -> Task:
    """Ask the way the adapter was trained: its recorded system prompt (and ``{column}`` template when the
    task's rows have those columns); ``--system`` overrides the system prompt. Said on screen, never silent."""
    if args.system is not None:
        return dataclasses.replace(task, system=args.system)
    record = read_prompt(args.adapter) if args.adapter else None
    if record is None:
        return task
    system = record.get("system_prompt") or task.system
    template = record.get("prompt")
    use_template = (bool(template) and not record.get("messages_column") and len(rows) > 0
                    and set(template_fields(template, "the adapter's prompt")) <= set(rows.rows[0]))
    user = (lambda r: fill(template, r, none_as_empty=True)) if use_template else task.user
    console.print(f"prompt: as the adapter was trained (system {system!r}"
                  + (f", template {template!r})" if use_template else "; the task's own user message)"), soft_wrap=True)
    return dataclasses.replace(task, system=system, user=user)


def _load_model(args: argparse.Namespace, console: Console) -> tuple[Any, str]:
    """The policy to evaluate (``--model`` + ``--adapter``, in eval mode) and its weights' dtype as recorded."""
    if args.threads:
        torch.set_num_threads(args.threads)
    with console.status(f"loading {args.model}" + (f" + {args.adapter}" if args.adapter else "")):
        policy = load_policy(args.model, quant=args.quant, adapter=args.adapter, device=args.device, trainable=False)
    fast = "bf16" if compute_dtype(policy.device) != torch.float32 else "fp32"  # measured per CPU (rltk.policy.devices)
    want = fast if args.dtype == "auto" else args.dtype
    if args.quant != "none":
        dtype = args.quant
        if policy.device.type == "cpu":
            # bitsandbytes' CPU 4/8-bit matmul and peft's unmerged LoRA are 10-50x slower than a dense copy of exactly
            # the same weights (quantized base dequantized + LoRA merged): what the GRPO job's own evals run on
            policy = dense_policy(policy)
    else:
        dtype = "bf16" if want == "bf16" else ("fp32+autocast" if fast == "bf16" else "fp32")
    if dtype == "bf16":
        policy.model.to(torch.bfloat16)
    return policy, dtype


def _save_and_show(args: argparse.Namespace, task: Task, result: EvalResult, console: Console) -> None:
    """Write the result JSON (and ``--markdown``), print the tables and where the files went."""
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


def cmd_eval(args: argparse.Namespace) -> int:
    if not args.task:
        raise UserError("rltk eval needs --task (see: rltk eval tasks), or a subcommand: compare, tasks")
    console = Console()
    # everything that can be wrong with the input is checked before the model loads
    task, ks, temperature = _checked_inputs(args)
    rows = task.load(args.data)
    task.check_rows(rows)
    task = _prompt_for(task, args, rows, console)
    policy, dtype = _load_model(args, console)
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
        decode_threads=args.decode_threads,
        seed=args.seed,
        ks=ks,
        few_shot=args.few_shot,
        few_shot_data=args.few_shot_data,
        progress=not args.no_progress,
        meta={"adapter": args.adapter, "device": str(policy.device), "dtype": dtype, "threads": torch.get_num_threads(),
              "command": "rltk eval"},
    )
    _save_and_show(args, task, result, console)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.resamples < 100:
        raise UserError(f"--resamples must be >= 100, got {args.resamples}")
    a, b = load_result(args.a), load_result(args.b)
    c = compare(a, b, alpha=args.alpha, n_resamples=args.resamples, seed=args.seed)
    more = compare_reasoning(a, b, alpha=args.alpha, n_resamples=args.resamples, seed=args.seed)
    own = compare_task_metrics(a, b, alpha=args.alpha, n_resamples=args.resamples, seed=args.seed)
    console = Console()
    console.print(comparison_table(c, a_label=f"A {args.a}", b_label=f"B {args.b}"))
    console.print(c.verdict, style="bold", highlight=False)
    for r in more + own:
        console.print(f"{r.metric}: {r.verdict}", highlight=False)
    if args.markdown:
        text = comparison_markdown(c, a, b) + "".join(f"\n**{r.metric}**: {r.verdict}\n" for r in more + own)
        Path(args.markdown).expanduser().write_text(text, encoding="utf-8")
    if args.output:
        out = {**c.to_dict(), "reasoning": [r.to_dict() for r in more], "task_metrics": [r.to_dict() for r in own]}
        Path(args.output).expanduser().write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    table = Table(title="eval tasks", title_justify="left")
    table.add_column("task", style="bold")
    table.add_column("what")
    table.add_column("scorer")
    for name in TASKS:
        t = get_task(name)
        table.add_row(name, t.description, ", ".join(s.name.rpartition(":")[2] for s in t.rewards))
    Console().print(table)
    return 0
