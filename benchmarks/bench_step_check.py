"""step_check on GSM8K: calculator notes verified, one-number corruptions detected, hostile rows through the CLI.

    python benchmarks/bench_step_check.py [--data ../shared/data] [--runs 3] [--seed 0]

Prints: the share of the 7,473 GSM8K train golds' ``<<...>>`` notes found as steps and verified (target
>= 99%), with the notes that are not by cause and examples; the same golds with the notes cut out (what a
model writes); the share of seeded one-number corruptions (a claimed result or an operand changed so the
claim is false, judged by this script's own exact evaluator) that are detected (target >= 99%); hostile
rows scored one per ``rltk reward score`` run, each row's time (target <= 1 s); checks per second.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

from rich.console import Console
from rich.table import Table

from machine_info import machine_line  # benchmarks/ (the script's folder)
from rewards.steps import check_steps

ROOT = Path(__file__).resolve().parents[1]
NOTE = re.compile(r"<<([^<>\n]*)>>")  # GSM8K golds: trusted data, short notes
NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
HOSTILE = {
    "9^9^9 and 2^99999": "9^9^9 = 1 and 2^99999 = 3 and 10**10**10 = 4",
    "10k-digit number": "1" * 10_000 + " + 1 = " + "1" * 9_999 + "2",
    "100k chars of 1+1=2": "1+1=2\n" * 17_000,
    "100k chars, no separators": "1+1=2" * 20_000,
    "parens 5k deep": "(" * 5000 + "1" + ")" * 5000 + " + 1 = 2",
    "20k unclosed parens": "(" * 20_000 + "= 3",
    "unicode digits": "٣ + ٤ = ٧ and ３ + ４ = ７ and 𝟑 + 𝟒 = 𝟕",
    "injection": "__import__('os').system('echo hi') = 0 and eval(1+1) = 2",
    "5000 notes": "<<1+1=2>>" * 5000,
    "2000 distinct claims": "\n".join(f"{i} * {i + 7} = {i * (i + 7)}" for i in range(2000)),
}


def exact(expr: str) -> Fraction:
    """Trusted GSM8K note arithmetic (+ - * / and parentheses) as an exact Fraction, by an ast walk."""
    def walk(n: ast.AST) -> Fraction:
        if isinstance(n, ast.Constant):
            return Fraction(str(n.value))
        if isinstance(n, ast.UnaryOp):
            return -walk(n.operand) if isinstance(n.op, ast.USub) else walk(n.operand)
        if not isinstance(n, ast.BinOp):
            raise ValueError(f"not arithmetic: {ast.dump(n)}")
        a, b, op = walk(n.left), walk(n.right), type(n.op)
        if op is ast.Add:
            return a + b
        if op is ast.Sub:
            return a - b
        if op is ast.Mult:
            return a * b
        if op is ast.Div:
            return a / b
        raise ValueError(f"operator {op.__name__}")
    return walk(ast.parse(expr, mode="eval").body)


def note_causes(golds: list[str]) -> tuple[Counter, list[str], int, int]:
    """Each note: verified, wrong, or not a step (and why). Returns (causes, examples, notes, steps checked)."""
    causes: Counter = Counter()
    examples: list[str] = []
    checked = 0
    for g in golds:
        report = check_steps(g)
        checked += report.n
        by_span = {(s.start, s.end): s for s in report.steps if s.annotated}
        for m in NOTE.finditer(g):
            step = by_span.get((m.start(1), m.end(1)))
            lhs = m.group(1).partition("=")[0]
            if step is not None:
                cause = "verified" if step.ok else f"wrong: {step.reason}"
            elif re.fullmatch(r"[+-]?[\d.]+", lhs.strip()):
                cause = "not a step: restates a number (<<64=64>>)"
            elif "//" in lhs:
                cause = "not a step: floor division // (refused by the parser)"
            else:
                cause = "not a step: other"
            causes[cause.split(":")[0] if cause.startswith("wrong") else cause] += 1
            if cause != "verified" and len(examples) < 5 and not cause.startswith("not a step: restates"):
                examples.append(f"<<{m.group(1)}>>: {cause}")
    return causes, examples, sum(causes.values()), checked


def corrupt(gold: str, rng: random.Random) -> tuple[str, int, int] | None:
    """The gold with one number of one arithmetic note changed so that its claim is false: (text, note start, note end)."""
    notes = [m for m in NOTE.finditer(gold) if m.group(1).count("=") == 1 and "//" not in m.group(1)
             and not re.fullmatch(r"[+-]?[\d.]+", m.group(1).partition("=")[0].strip())]  # <<64=64>> is no step
    if not notes:
        return None
    m = rng.choice(notes)
    lhs, _, rhs = m.group(1).partition("=")
    spots = [("rhs", x) for x in NUMBER.finditer(rhs)] + [("lhs", x) for x in NUMBER.finditer(lhs)]
    kind, x = rng.choice(spots)
    new_num = str(Fraction(x.group()) + rng.randint(1, 9)).replace("/", "")  # integer + delta, or a decimal's
    if "." in x.group():
        new_num = f"{float(x.group()) + rng.randint(1, 9):.{len(x.group().partition('.')[2])}f}"
    side = rhs if kind == "rhs" else lhs
    side = side[:x.start()] + new_num + side[x.end():]
    lhs2, rhs2 = (lhs, side) if kind == "rhs" else (side, rhs)
    try:
        decimals = len(rhs2.partition(".")[2])
        if abs(exact(lhs2) - Fraction(rhs2)) <= (Fraction(1, 2 * 10**decimals) if decimals else 0):
            return None  # the claim is still true, exactly or as rounded to the digits shown (79/125 = .6)
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None
    tail = gold[m.end():]
    if kind == "rhs" and tail.startswith(rhs):  # the visible copy of the result after the note changes too
        tail = new_num + tail[len(rhs):]
    text = gold[:m.start()] + f"<<{lhs2}={rhs2}>>" + tail
    return text, m.start() + 2, m.start() + 2 + len(lhs2) + 1 + len(rhs2)


def detection(golds: list[str], seed: int) -> tuple[int, int, list[str]]:
    rng = random.Random(seed)
    caught = total = 0
    missed: list[str] = []
    for g in golds:
        c = corrupt(g, rng)
        if c is None:
            continue
        text, a, b = c
        total += 1
        hit = any(not s.ok and s.start < b and s.end > a for s in check_steps(text).steps)
        caught += hit
        if not hit and len(missed) < 5:
            missed.append(text[a:b])
    return caught, total, missed


def hostile_cli(console: Console) -> Table:
    """Each hostile row alone through ``python -m rltk reward score``: the CLI's own ms/row and the run's wall time."""
    table = Table(title="hostile rows, one `rltk reward score --reward step_check` run each (target <= 1 s per row)")
    for col in ("row", "chars", "score", "CLI ms / row", "run wall s", "detail"):
        table.add_column(col, justify="left" if col in ("row", "detail") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in HOSTILE.items():
            inp, out = Path(tmp) / "row.jsonl", Path(tmp) / "out.jsonl"
            inp.write_text(json.dumps({"completion": text}) + "\n")
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "rltk", "reward", "score", "--reward", "step_check",
                                   "--input", str(inp), "--output", str(out)], capture_output=True, text=True,
                                  timeout=300, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                table.add_row(name, str(len(text)), "ERROR", "", f"{wall:.1f}", proc.stderr.strip()[-80:])
                continue
            row = json.loads(out.read_text())
            line = next((ln for ln in proc.stdout.splitlines() if "step_check" in ln and "│" in ln), "")
            cells = [c.strip() for c in line.split("│") if c.strip()]
            detail = json.dumps(row.get("details", {}).get("step_check"))[:70]
            table.add_row(name, str(len(text)), f"{row['rewards']['step_check']}", cells[-1] if cells else "?", f"{wall:.1f}", detail)
    return table


def throughput(golds: list[str], runs: int) -> tuple[float, float]:
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        steps = sum(check_steps(g).n for g in golds)
        rates.append((steps / (time.perf_counter() - t0), len(golds) / (time.perf_counter() - t0)))
    return statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    path = Path(args.data) / "gsm8k" / "train.jsonl"
    golds = [json.loads(line)["answer"] for line in path.open()]
    console = Console(width=160)
    console.print(machine_line())
    causes, examples, notes, _ = note_causes(golds)
    found = notes - sum(v for k, v in causes.items() if k.startswith("not a step"))
    t = Table(title=f"GSM8K train golds ({len(golds)}): calculator notes <<...>>")
    t.add_column("notes / cause")
    t.add_column("count", justify="right")
    t.add_column("share", justify="right")
    t.add_row("notes", str(notes), "")
    t.add_row("found as steps", str(found), f"{found / notes:.2%}")
    t.add_row("[bold]verified, of steps found[/bold] (target >= 99%)", str(causes["verified"]), f"{causes['verified'] / found:.2%}")
    for k, v in sorted(causes.items()):
        if k != "verified":
            t.add_row(f"  {k}", str(v), f"{v / notes:.2%}")
    console.print(t)
    for e in examples:
        console.print(f"  example: {e}")
    stripped = [NOTE.sub("", g) for g in golds]
    reports = [check_steps(g) for g in stripped]
    n = sum(r.n for r in reports)
    console.print(f"notes cut out (model-style text): {n} steps in {sum(r.n > 0 for r in reports)} golds, "
                  f"{sum(r.n_valid for r in reports) / n:.2%} valid, {sum(r.unparsed for r in reports)} unparsed claims")
    caught, total, missed = detection(golds, args.seed)
    console.print(f"[bold]one number changed in one note (seed {args.seed}): {caught}/{total} detected = {caught / total:.2%}"
                  f"[/bold] (target >= 99%)" + (f"; missed e.g. {missed}" if missed else ""))
    steps_s, golds_s = throughput(golds, max(1, args.runs))
    console.print(f"throughput (median of {args.runs} passes over the {len(golds)} golds, one process): "
                  f"{steps_s:,.0f} checks/s, {golds_s:,.0f} golds/s")
    console.print(hostile_cli(console))


if __name__ == "__main__":
    main()
