"""``rltk reward`` subcommands: ``score``, ``test``, ``audit`` (the parsers; the handlers are in
:mod:`rewards.commands`, imported only when a subcommand runs, so ``rltk --help`` stays light).

Rewards are given with ``--reward NAME_OR_PATH`` (repeatable: several components, weight 1 each)
and ``--param LABEL.KEY=VALUE`` (a component's knob, e.g. ``math_answer.gold_column=solution``),
or with ``--rewards FILE.yaml`` holding a ``rewards:`` list of RewardSpec entries. Rows are JSONL
with a ``completion`` column (a string or a list of chat messages) plus the columns the rewards
need; both are checked before any scoring.

    rltk reward score --reward math_answer --input rows.jsonl --output scored.jsonl
    rltk reward test  --reward my_rewards.py:fmt --cases cases.jsonl
    rltk reward audit --reward math_answer --data rows.jsonl --json audit.json
"""

from __future__ import annotations

import argparse


def _add_reward_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reward", action="append", metavar="NAME_OR_PATH",
                   help="registered name (math_answer, format_answer, ...), module:fn or file.py:fn; repeatable")
    p.add_argument("--rewards", dest="rewards_file", metavar="FILE.yaml", help="YAML with a 'rewards:' list of specs")
    p.add_argument("--param", action="append", metavar="LABEL.KEY=VALUE", help="a reward's parameter; repeatable")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per sample for sandboxed rewards (default 5)")
    p.add_argument("--fallback", type=float, default=None, help="score for a sample whose reward failed (default: none)")
    p.add_argument("--processes", type=int, default=0, help="sandbox worker processes (default 8)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    reward = sub.add_parser("reward", help="score, unit-test and audit reward functions")
    rsub = reward.add_subparsers(dest="reward_command", metavar="SUBCOMMAND")
    reward.set_defaults(func=lambda a: (reward.print_help(), 2)[1])

    p = rsub.add_parser("score", help="score a JSONL of completions; write rows back with their rewards")
    _add_reward_args(p)
    p.add_argument("--input", required=True, help="rows.jsonl with a 'completion' column")
    p.add_argument("--output", required=True, help="scored.jsonl to write")
    p.set_defaults(func="rewards.commands:cmd_score")

    p = rsub.add_parser("test", help="check a reward against labelled cases (exit 1 on any failure)")
    _add_reward_args(p)
    p.add_argument("--cases", required=True, help="cases.jsonl: 'completion', the reward's columns, 'expected'")
    p.add_argument("--tolerance", type=float, default=1e-6, help="allowed |score - expected| (default 1e-6)")
    p.add_argument("--threshold", type=float, default=0.5, help="score >= threshold counts as positive for FP/FN rates")
    p.set_defaults(func="rewards.commands:cmd_test")

    p = rsub.add_parser("audit", help="score adversarial completions for each row: the hackability report")
    _add_reward_args(p)
    p.add_argument("--data", required=True, help="rows.jsonl (the columns the reward needs; 'prompt' to echo)")
    p.add_argument("--json", dest="json_out", help="write the report as JSON here")
    p.add_argument("--limit", type=int, default=50, help="rows to attack (default 50)")
    p.add_argument("--high", type=float, default=0.5, help="a total >= this counts as scored high (default 0.5)")
    p.add_argument("--gold-column", default="answer", help="column with the gold answer, for the answer attacks")
    p.add_argument("--honest-column", help="column with an honest completion per row: scored too, and every attack "
                                           "is counted where it scores at least as much (e.g. a good summary)")
    p.set_defaults(func="rewards.commands:cmd_audit")
