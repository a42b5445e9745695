"""math_answer speed and worst-case latency, pinned to one CPU core.

    python benchmarks/bench_rewards.py [--runs 5] [--data ../shared/data]

Prints one table: checks per second (median of --runs runs) for
- the MATH-500 self-check (each gold written as \\boxed{gold}, verified against itself),
- its numeric-answer subset (the in-process fast path; target >= 300 checks/s on one core),
- the same numeric subset with every check forced through the sympy tier in-process (the
  baseline the fast path is measured against, in this run),
- GSM8K test (``#### gold``) and the MATH-500 fixed shuffle (gold vs another row's answer,
  which mostly takes the sympy tier in a sandbox worker);
and the worst single-call latency over adversarial answers against the hard time limit.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from machine_info import machine_line  # benchmarks/ (the script's folder)
from rewards import get_reward
from rewards.math import check_symbolic, normalize, plain_number
from rewards.sandbox import get_pool
from rltk.core.rows import read_rows

ROOT = Path(__file__).resolve().parents[1]

ADVERSARIAL = {
    "9^9^9^9^9": r"\boxed{9^9^9^9^9}",
    "9^{9^{9^{9^9}}}": r"\boxed{9^{9^{9^{9^{9}}}}}",
    "10^(10^10)": "the answer is 10^(10^10)",
    "100 kB expression": r"\boxed{" + "+".join(["x^2"] * 25_000) + "}",
    "5000 nested braces": r"\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "400 nested \\frac": r"\boxed{" + r"\frac{1}{" * 400 + "2" + "}" * 400 + "}",
    "100000!": r"\boxed{100000!}",
    "(x+y+z)^{500}": r"\boxed{(x+y+z)^{500}}",
    "20000 digits": r"\boxed{" + "9" * 20_000 + "}",
    "code injection": r"\boxed{__import__('os').system('true')}",
}
ADVERSARIAL_GOLD = r"\frac{\sqrt{3}}{2}"

Rate = tuple[float, float]  # (median checks/s, half the spread)
RateRow = tuple[str, int, Rate, str]  # (check, n, rate, note)


@dataclass
class Cases:
    """The completions and golds each throughput row checks."""

    golds: list[str]  # MATH-500 answers
    boxed: list[str]  # each gold as the final \boxed{} answer of a sentence
    numeric: list[str]  # the golds that are plain numbers
    num_boxed: list[str]
    shuffled: list[str]  # another row's gold, boxed (fixed permutation, seed 0)
    gsm_golds: list[str]  # GSM8K test answers (empty when the file is absent)
    gsm_comp: list[str]  # each GSM8K gold as a ``#### gold`` completion


def rate(fn: Callable[[], Any], n: int, runs: int) -> Rate:
    """Median checks/s over ``runs`` runs of ``fn`` (which performs ``n`` checks), and its spread."""
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates), (max(rates) - min(rates)) / 2


def load_cases(data: Path) -> Cases:
    """The checks to time, from ``data``/math500/test.jsonl and (if present) ``data``/gsm8k/test.jsonl."""
    golds = [r["answer"] for r in read_rows(data / "math500" / "test.jsonl").rows]
    numeric = [g for g in golds if plain_number(normalize(g)) is not None]
    perm = list(range(len(golds)))
    random.Random(0).shuffle(perm)
    gsm_file = data / "gsm8k" / "test.jsonl"
    gsm_golds = [r["answer"] for r in read_rows(gsm_file).rows] if gsm_file.is_file() else []
    return Cases(
        golds=golds,
        boxed=[f"So the final answer is $\\boxed{{{g}}}$." for g in golds],
        numeric=numeric,
        num_boxed=[f"\\boxed{{{g}}}" for g in numeric],
        shuffled=[f"\\boxed{{{golds[j]}}}" for j in perm],
        gsm_golds=gsm_golds,
        gsm_comp=[f"Step by step.\n#### {g.rsplit('####', 1)[1].strip()}" for g in gsm_golds],
    )


def measure_rates(ma: Any, c: Cases, runs: int) -> list[RateRow]:
    """Checks/s of each row of the throughput table (the slow rows get half the runs)."""
    results: dict[str, list[float | None]] = {}

    def run(name: str, comps: list[str], answers: list[str]) -> Callable[[], None]:
        def once() -> None:
            results[name] = ma(comps, answer=answers)
        return once

    def scored(name: str, n: int) -> str:
        return f"{sum(s == 1.0 for s in results[name]) / n:.1%} scored 1"

    rows: list[RateRow] = []
    r_all = rate(run("self", c.boxed, c.golds), len(c.golds), runs)
    r_num = rate(run("numeric", c.num_boxed, c.numeric), len(c.numeric), runs)
    base = rate(lambda: [check_symbolic(g, g) for g in c.numeric], len(c.numeric), max(1, runs // 2))
    rows.append(("MATH-500 self-check (\\boxed{gold})", len(c.golds), r_all, scored("self", len(c.golds))))
    rows.append(("  numeric answers only (fast path)", len(c.numeric), r_num, f"{r_num[0] / base[0]:.0f}x the sympy tier"))
    rows.append(("  numeric answers, sympy tier in-process (baseline)", len(c.numeric), base, "1x"))
    if c.gsm_golds:
        r_gsm = rate(run("gsm", c.gsm_comp, c.gsm_golds), len(c.gsm_golds), runs)
        rows.append(("GSM8K test (#### gold)", len(c.gsm_golds), r_gsm, scored("gsm", len(c.gsm_golds))))
    r_sh = rate(run("shuffle", c.shuffled, c.golds), len(c.golds), max(1, runs // 2))
    rows.append(("MATH-500 fixed shuffle (gold vs other row)", len(c.golds), r_sh, scored("shuffle", len(c.golds))))
    return rows


def rate_table(rows: list[RateRow], runs: int) -> Table:
    table = Table(title=f"math_answer on one core (median of {runs} runs)")
    for col in ("check", "n", "checks/s", "±", "note"):
        table.add_column(col, justify="left" if col in ("check", "note") else "right")
    for name, n, (med, spread), note in rows:
        table.add_row(name, str(n), f"{med:,.0f}", f"{spread:,.0f}", note)
    return table


def measure_latency(ma: Any, timeout: float) -> tuple[Table, float, bool]:
    """One call per adversarial answer, timed; then one honest check (is the reward still healthy?).
    Returns the latency table, the worst seconds, and whether the honest check scored 1."""
    lat = Table(title=f"worst-case latency per call (hard limit {timeout:g} s)")
    for col in ("adversarial answer", "seconds", "score"):
        lat.add_column(col, justify="left" if col == "adversarial answer" else "right")
    worst = 0.0
    for name, text in ADVERSARIAL.items():
        t0 = time.perf_counter()
        score = ma([text], answer=[ADVERSARIAL_GOLD])[0]
        dt = time.perf_counter() - t0
        worst = max(worst, dt)
        lat.add_row(name, f"{dt:.3f}", str(score))
    ok = ma([r"\boxed{\frac{\sqrt{3}}{2}}"], answer=[ADVERSARIAL_GOLD]) == [1.0]
    lat.add_row("[bold]worst[/bold]", f"[bold]{worst:.3f}[/bold]", "healthy after" if ok else "[red]BROKEN[/red]")
    return lat, worst, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data", default=str(ROOT / ".." / "shared" / "data"))
    ap.add_argument("--timeout", type=float, default=5.0, help="math_answer's hard limit per check")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "math500" / "test.jsonl").is_file():
        print(f"bench_rewards: {data}/math500/test.jsonl not found (pass --data)", file=sys.stderr)
        return 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # workers inherit the one core

    ma = get_reward("math_answer", timeout_s=args.timeout)
    get_pool("verify").warm()
    table = rate_table(measure_rates(ma, load_cases(data), args.runs), args.runs)
    lat, worst, ok = measure_latency(ma, args.timeout)
    console = Console()
    console.print(table)
    console.print(lat)
    console.print(machine_line())
    return 0 if ok and worst <= args.timeout + 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
