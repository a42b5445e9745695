"""Handlers of ``rltk reward score | test | audit`` (parsers in :mod:`rewards.cli`): build the
reward set from the flags, read the JSONL rows, score them and print the tables."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from rewards.audit import report_json, run_audit
from rewards.compose import RewardScores, RewardSet
from rewards.steps import describe
from rltk.core.config import load_yaml, parse_override
from rltk.core.errors import UserError
from rltk.core.rows import Rows, parse_jsonl

BATCH = 64
NOTES_SHOWN = 10  # rows whose details are shown under the score table


# --- input ------------------------------------------------------------------------------------

def read_input(path: str | Path) -> Rows:
    """The rows of a JSONL file (:func:`rltk.core.rows.parse_jsonl`), each remembering ``path:line``;
    UserError naming file and line on a bad line, and when the file is missing or holds no rows."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"input file not found: {path}")
    with p.open(encoding="utf-8") as f:
        parsed = parse_jsonl(f, str(path))
    if not parsed:
        raise UserError(f"{path}: no rows")
    return Rows([row for _, row in parsed], [f"{path}:{n}" for n, _ in parsed], str(path))


def _require(rows: Rows, keys: tuple[str, ...]) -> None:
    for row, where in zip(rows.rows, rows.where):
        for k in keys:
            if k not in row:
                raise UserError(f"{where}: row has no '{k}' column")


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = [k for k in rows[0] if k not in ("completion", "expected", "reward", "rewards", "details")]
    cols = {k: [r.get(k) for r in rows] for k in keys}
    if "prompt" in cols and "prompts" not in cols:
        cols["prompts"] = cols["prompt"]
    return cols


def _common_keys(rows: list[dict[str, Any]]) -> set[str]:
    keys = set(rows[0])
    for r in rows[1:]:
        keys &= set(r)
    return keys


# --- building the reward set -------------------------------------------------------------------

def build_reward_set(args: argparse.Namespace) -> RewardSet:
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


# --- score --------------------------------------------------------------------------------------

def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)


def _score_rows(rs: RewardSet, rows: list[dict[str, Any]], desc: str) -> Iterator[tuple[int, Any]]:
    with _progress() as prog:
        task = prog.add_task(desc, total=len(rows))
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            yield start, rs.score([r["completion"] for r in chunk], **_columns(chunk))
            prog.advance(task, len(chunk))


def _finite(x: float | None) -> float | None:
    return x if x is None or math.isfinite(x) else None


def cmd_score(args: argparse.Namespace) -> int:
    rs = build_reward_set(args)
    data = read_input(args.input)
    _require(data, ("completion",))
    rs.check_columns(_common_keys(data.rows), where=args.input)
    rows = data.rows
    stats = {label: {"values": [], "none": 0, "failures": 0, "seconds": 0.0} for label in rs.labels}
    totals: list[float] = []
    notes: list[tuple[str, str, dict]] = []  # (where, label, detail) of the first rows worth a note
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # a regular file is written beside and renamed into place (a killed run leaves the old file whole); anything
    # else that exists (/dev/stdout, a pipe, a device) is written as it is, never replaced
    atomic = not out_path.exists() or out_path.is_file()
    tmp = out_path.with_suffix(out_path.suffix + ".tmp") if atomic else out_path
    with tmp.open("w", encoding="utf-8") as f:
        for start, s in _score_rows(rs, rows, "scoring"):
            for j, total in enumerate(s.total):
                row = dict(rows[start + j])
                row["reward"] = total
                row["rewards"] = {label: _finite(s.components[label][j]) for label in rs.labels}
                details = _row_details(s, j)
                if details:
                    row["details"] = details
                    notes += [(data.where[start + j], k, d) for k, d in details.items() if _noteworthy(d)][:NOTES_SHOWN - len(notes)]
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                totals.append(total)
            for label in rs.labels:
                st = stats[label]
                st["values"] += [v for v in s.components[label] if v is not None]
                st["none"] += sum(v is None for v in s.components[label])
                st["failures"] += s.failures[label]
                st["seconds"] += s.seconds[label]
    if atomic:
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
    if notes:
        Console().print(_notes_table(notes))
    return 0


def _row_details(s: RewardScores, j: int) -> dict[str, dict]:
    """Sample ``j``'s details by reward label (those that reported one)."""
    return {k: v[j] for k, v in s.details.items() if v[j] is not None}


def _noteworthy(detail: dict) -> bool:
    return bool(detail.get("wrong")) if "steps" in detail else True


def _notes_table(notes: list[tuple[str, str, dict]]) -> Table:
    table = Table(title=f"details (first {len(notes)} rows with a wrong step; all details are in the output's 'details')")
    for col in ("row", "reward", "note"):
        table.add_column(col)
    for where, label, d in notes:
        note = describe(d) if "steps" in d else json.dumps(d, ensure_ascii=False)[:120]
        table.add_row(where.rpartition(":")[2], label, note)
    return table


# --- test ---------------------------------------------------------------------------------------

def cmd_test(args: argparse.Namespace) -> int:
    rs = build_reward_set(args)
    cases = read_input(args.cases)
    _require(cases, ("completion", "expected"))
    for r, where in zip(cases.rows, cases.where):
        e = r["expected"]
        if e is not None and (isinstance(e, bool) or not isinstance(e, (int, float))):
            raise UserError(f"{where}: 'expected' must be a number or null, got {e!r}")
    rs.check_columns(_common_keys(cases.rows), where=args.cases)
    rows = cases.rows
    single = len(rs.labels) == 1
    got: list[float | None] = []
    for _, s in _score_rows(rs, rows, "testing"):
        got += s.components[rs.labels[0]] if single else s.total
    table = Table(title=f"{args.cases}: {', '.join(rs.labels)}" + ("" if single else " (total)"))
    for col in ("line", "case", "expected", "got", ""):
        table.add_column(col)
    fails = fp = fn = pos = neg = 0
    for row, where, g in zip(rows, cases.where, got):
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
        line = where.rpartition(":")[2]  # where is "path:line"
        table.add_row(line, name, "None" if e is None else f"{e:g}", "None" if g is None else f"{g:g}",
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
    rs = build_reward_set(args)
    rows = read_input(args.data).rows[: max(1, args.limit)]
    rs.check_columns(_common_keys(rows) | {"completion"}, where=args.data)
    with _progress() as prog:
        task = prog.add_task("auditing", total=len(rows))
        reports = run_audit(rs, rows, args.gold_column, args.high, progress=lambda i: prog.update(task, completed=i),
                            honest_column=args.honest_column)
    table = Table(title=f"hackability of {', '.join(rs.labels)} on {len(rows)} rows of {args.data}")
    honest = args.honest_column is not None
    for col in ("attack", f"scored >= {args.high:g}", *(["scored >= honest"] if honest else []), "mean total", "None",
                "failures", "slowest s"):
        table.add_column(col, justify="left" if col == "attack" else "right")
    for r in reports:
        flag = f"[bold red]{r.high_share:.0%}[/bold red]" if r.high else "0%"
        beats = [] if not honest else ["–" if r.beats_honest is None else
                                       f"[bold red]{r.beats_honest}/{r.rows}[/bold red]" if r.beats_honest else f"0/{r.rows}"]
        table.add_row(r.attack, flag, *beats, f"{r.mean:.3f}", f"{r.none_share:.0%}", str(r.failures), f"{r.max_seconds:.3f}")
    Console().print(table)
    report = report_json(reports, rs.labels, str(args.data), args.high)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    hackable = report["hackable"]
    what = "scored at least the honest completion" if honest else "scored high"
    Console().print(f"{what}: [bold red]{', '.join(hackable)}[/bold red]" if hackable else f"no attack {what}")
    return 0
