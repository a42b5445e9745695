"""The parsers of ``rltk eval`` (run a task), ``rltk eval compare A.json B.json`` and ``rltk eval tasks``.

Parsers only, so every ``rltk`` command can build them without loading torch: each handler is named
as a ``"module:function"`` string (:mod:`evals.commands`), imported when its subcommand runs.
"""

from __future__ import annotations

import argparse


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
    p.add_argument("--adapter", help="LoRA adapter folder (peft) to evaluate on top of the model; asked with the system prompt "
                                     "and template it was trained with (recorded beside it by rltk) unless --system is given")
    p.add_argument("--system", help="the system prompt to ask with (default: the adapter's training prompt, else the task's)")
    p.add_argument("--quant", default="none", choices=("none", "nf4", "int8"), help="base model quantization (default: none)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present)")
    p.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"),
                   help="weights of an unquantized model: auto = the compute dtype (bf16 on GPUs and on CPUs where it was "
                   "measured faster, else fp32), fp32 = fp32 weights (under bf16 autocast where bf16 is the compute dtype, "
                   "as in training)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--limit", type=int, help="evaluate the first N items (after --shuffle)")
    p.add_argument("--shuffle", action="store_true", help="take a seeded random subset with --limit instead of the first rows")
    p.add_argument("--seed", type=int, default=0, help="sampling, shuffling and few-shot seed (default: 0)")
    p.add_argument("--batch-size", type=int, default=32, help="sequences decoded together (default: 32)")
    p.add_argument("--decode-threads", type=int, default=0,
                   help="threads decoding together, each its share of a batch (default: 0 = 2 on a CPU of 2+ cores, 1 on a GPU)")
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
    p.set_defaults(func="evals.commands:cmd_eval")
    esub = p.add_subparsers(dest="eval_command", metavar="{compare,tasks}")
    c = esub.add_parser("compare", help="paired test of run B against run A on the same items")
    c.add_argument("a", help="result JSON of the baseline run (A)")
    c.add_argument("b", help="result JSON of the candidate run (B)")
    c.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdict (default: 0.05)")
    c.add_argument("--resamples", type=int, default=10_000, help="paired bootstrap resamples (default: 10000)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--markdown", help="write a Markdown report here")
    c.add_argument("--output", "-o", help="write the comparison as JSON here")
    c.set_defaults(func="evals.commands:cmd_compare")
    t = esub.add_parser("tasks", help="list the built-in tasks")
    t.set_defaults(func="evals.commands:cmd_tasks")
