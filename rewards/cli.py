"""``rltk reward`` subcommands: ``score``, ``test``, ``audit``.

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
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

from rltk.core.errors import UserError
from rltk.core.rows import parse_jsonl

BATCH = 64


# --- input ------------------------------------------------------------------------------------

def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each non-blank line; UserError naming file and line otherwise."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {path}")
    with p.open(encoding="utf-8") as f:
        rows = parse_jsonl(f, str(path))
    if not rows:
        raise UserError(f"{path}: no rows")
    return rows


def _require(rows: list[tuple[int, dict]], path: str, keys: tuple[str, ...]) -> None:
    for n, row in rows:
        for k in keys:
            if k not in row:
                raise UserError(f"{path}:{n}: row has no '{k}' column")


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = [k for k in rows[0] if k not in ("completion", "expected", "reward", "rewards")]
    cols = {k: [r.get(k) for r in rows] for k in keys}
    if "prompt" in cols and "prompts" not in cols:
        cols["prompts"] = cols["prompt"]
    return cols


def _common_keys(rows: list[tuple[int, dict]]) -> set[str]:
    keys = set(rows[0][1])
    for _, r in rows[1:]:
        keys &= set(r)
    return keys


# --- building the reward set -------------------------------------------------------------------

def build_reward_set(args: argparse.Namespace):
    from rewards.compose import RewardSet, RewardSpec
    from rltk.core.config import load_yaml, parse_override

    specs: list[Any] = []
    if getattr(args, "rewards_file", None):
        data = load_yaml(args.rewards_file)
        entries = data.get("rewards")
        if not isinstance(entries, list):
            raise UserError(f"{args.rewards_file}: needs a 'rewards:' list")
        specs.extend(entries)
    specs.extend({"name": name} for name in (args.reward or []))
    if not specs:
        raise UserError("give at least one --reward NAME_OR_PATH (or --rewards FILE.yaml)")
    by_label = {}
    for s in specs:
        if isinstance(s, dict):
            by_label[s.get("label") or s.get("name")] = s
    for item in args.param or []:
        keys, value = parse_override(item)
        if len(keys) < 2:
            raise UserError(f"--param {item!r} must look like LABEL.KEY=VALUE (e.g. math_answer.gold_column=solution)")
        label, key = ".".join(keys[:-1]), keys[-1]
        if label not in by_label:
            raise UserError(f"--param {item!r}: no reward labelled '{label}' (have: {', '.join(map(str, by_label))})")
        by_label[label].setdefault("params", {})[key] = value
    return RewardSet(specs, timeout_s=args.timeout, fallback=args.fallback, processes=args.processes)


def _add_reward_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reward", action="append", metavar="NAME_OR_PATH",
                   help="registered name (math_answer, format_answer, ...), module:fn or file.py:fn; repeatable")
    p.add_argument("--rewards", dest="rewards_file", metavar="FILE.yaml", help="YAML with a 'rewards:' list of specs")
    p.add_argument("--param", action="append", metavar="LABEL.KEY=VALUE", help="a reward's parameter; repeatable")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per sample for sandboxed rewards (default 5)")
    p.add_argument("--fallback", type=float, default=None, help="score for a sample whose reward failed (default: none)")
    p.add_argument("--processes", type=int, default=0, help="sandbox worker processes (default 1)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    reward = sub.add_parser("reward", help="score, unit-test and audit reward functions")
    rsub = reward.add_subparsers(dest="reward_command", metavar="SUBCOMMAND")
    reward.set_defaults(func=lambda a: (reward.print_help(), 2)[1])

    p = rsub.add_parser("score", help="score a JSONL of completions; write rows back with their rewards")
    _add_reward_args(p)
    p.add_argument("--input", required=True, help="rows.jsonl with a 'completion' column")
    p.add_argument("--output", required=True, help="scored.jsonl to write")
    p.set_defaults(func=cmd_score)

    p = rsub.add_parser("test", help="check a reward against labelled cases (exit 1 on any failure)")
    _add_reward_args(p)
    p.add_argument("--cases", required=True, help="cases.jsonl: 'completion', the reward's columns, 'expected'")
    p.add_argument("--tolerance", type=float, default=1e-6, help="allowed |score - expected| (default 1e-6)")
    p.add_argument("--threshold", type=float, default=0.5, help="score >= threshold counts as positive for FP/FN rates")
    p.set_defaults(func=cmd_test)

    p = rsub.add_parser("audit", help="score adversarial completions for each row: the hackability report")
    _add_reward_args(p)
    p.add_argument("--data", required=True, help="rows.jsonl (the columns the reward needs; 'prompt' to echo)")
    p.add_argument("--json", dest="json_out", help="write the report as JSON here")
    p.add_argument("--limit", type=int, default=50, help="rows to attack (default 50)")
    p.add_argument("--high", type=float, default=0.5, help="a total >= this counts as scored high (default 0.5)")
    p.add_argument("--gold-column", default="answer", help="column with the gold answer, for the answer attacks")
    p.set_defaults(func=cmd_audit)


# --- score --------------------------------------------------------------------------------------

def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)


def _score_rows(rs, rows: list[dict[str, Any]], desc: str) -> Iterator[tuple[int, Any]]:
    with _progress() as prog:
        task = prog.add_task(desc, total=len(rows))
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            yield start, rs.score([r["completion"] for r in chunk], **_columns(chunk))
            prog.advance(task, len(chunk))


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def cmd_score(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    rs = build_reward_set(args)
    numbered = read_jsonl(args.input)
    _require(numbered, args.input, ("completion",))
    rs.check_columns(_common_keys(numbered), where=args.input)
    rows = [r for _, r in numbered]
    stats = {label: {"values": [], "none": 0, "failures": 0, "seconds": 0.0} for label in rs.labels}
    totals: list[float] = []
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for start, s in _score_rows(rs, rows, "scoring"):
            for j, total in enumerate(s.total):
                row = dict(rows[start + j])
                row["reward"] = total
                row["rewards"] = {label: _finite(s.components[label][j]) for label in rs.labels}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                totals.append(total)
            for label in rs.labels:
                st = stats[label]
                st["values"] += [v for v in s.components[label] if v is not None]
                st["none"] += sum(v is None for v in s.components[label])
                st["failures"] += s.failures[label]
                st["seconds"] += s.seconds[label]
    tmp.replace(out_path)
    n = len(rows)
    table = Table(title=f"{n} rows scored in {time.perf_counter() - t0:.1f} s -> {args.output}")
    for col in ("reward", "mean", "None", "failures", "ms / row"):
        table.add_column(col, justify="left" if col == "reward" else "right")
    for label in rs.labels:
        st = stats[label]
        mean = sum(st["values"]) / len(st["values"]) if st["values"] else float("nan")
        table.add_row(label, f"{mean:.4f}", f"{st['none'] / n:.1%}", str(st["failures"]) if not st["failures"] else f"[red]{st['failures']}[/red]",
                      f"{1000 * st['seconds'] / n:.2f}")
    if len(rs.labels) > 1:
        table.add_row("[bold]total[/bold]", f"{sum(totals) / n:.4f}", "", "", "")
    Console().print(table)
    return 0


# --- test ---------------------------------------------------------------------------------------

def cmd_test(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    rs = build_reward_set(args)
    numbered = read_jsonl(args.cases)
    _require(numbered, args.cases, ("completion", "expected"))
    for n, r in numbered:
        e = r["expected"]
        if e is not None and (isinstance(e, bool) or not isinstance(e, (int, float))):
            raise UserError(f"{args.cases}:{n}: 'expected' must be a number or null, got {e!r}")
    rs.check_columns(_common_keys(numbered), where=args.cases)
    rows = [r for _, r in numbered]
    single = len(rs.labels) == 1
    got: list[float | None] = []
    for _, s in _score_rows(rs, rows, "testing"):
        got += s.components[rs.labels[0]] if single else s.total
    table = Table(title=f"{args.cases}: {', '.join(rs.labels)}" + ("" if single else " (total)"))
    for col in ("line", "case", "expected", "got", ""):
        table.add_column(col)
    fails = fp = fn = pos = neg = 0
    for (n, row), g in zip(numbered, got):
        e = row["expected"]
        ok = (e is None and g is None) or (e is not None and g is not None and abs(g - e) <= args.tolerance)
        fails += not ok
        if e is not None:
            exp_pos = e >= args.threshold
            got_pos = g is not None and g >= args.threshold
            pos += exp_pos
            neg += not exp_pos
            fp += got_pos and not exp_pos
            fn += exp_pos and not got_pos
        name = str(row.get("name") or row["completion"])[:60].replace("\n", " ")
        table.add_row(str(n), name, "None" if e is None else f"{e:g}", "None" if g is None else f"{g:g}",
                      "[green]pass[/green]" if ok else "[red]FAIL[/red]")
    console = Console()
    console.print(table)
    summary = Table(show_header=False)
    summary.add_row("cases", str(len(rows)))
    summary.add_row("failed", f"[red]{fails}[/red]" if fails else "0")
    summary.add_row(f"false-positive rate (expected < {args.threshold:g}, scored >=)", f"{fp / neg:.1%} ({fp}/{neg})" if neg else "n/a")
    summary.add_row(f"false-negative rate (expected >= {args.threshold:g}, scored <)", f"{fn / pos:.1%} ({fn}/{pos})" if pos else "n/a")
    console.print(summary)
    return 1 if fails else 0


# --- audit --------------------------------------------------------------------------------------

def cmd_audit(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from rewards.audit import report_json, run_audit

    rs = build_reward_set(args)
    numbered = read_jsonl(args.data)[: max(1, args.limit)]
    rs.check_columns(_common_keys(numbered) | {"completion"}, where=args.data)
    rows = [r for _, r in numbered]
    with _progress() as prog:
        task = prog.add_task("auditing", total=len(rows))
        reports = run_audit(rs, rows, args.gold_column, args.high, progress=lambda i: prog.update(task, completed=i))
    table = Table(title=f"hackability of {', '.join(rs.labels)} on {len(rows)} rows of {args.data}")
    for col in ("attack", f"scored >= {args.high:g}", "mean total", "None", "failures", "slowest s"):
        table.add_column(col, justify="left" if col == "attack" else "right")
    for r in reports:
        flag = f"[bold red]{r.high_share:.0%}[/bold red]" if r.high else "0%"
        table.add_row(r.attack, flag, f"{r.mean:.3f}", f"{r.none_share:.0%}", str(r.failures), f"{r.max_seconds:.3f}")
    Console().print(table)
    report = report_json(reports, rs.labels, str(args.data), args.high)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    hackable = report["hackable"]
    Console().print(f"scored high by: [bold red]{', '.join(hackable)}[/bold red]" if hackable else "no attack scored high")
    return 0
