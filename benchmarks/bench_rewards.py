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
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rewards import get_reward
from rewards.math import check_symbolic, normalize, plain_number
from rewards.sandbox import get_pool

ROOT = Path(__file__).resolve().parents[1]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rate(fn, n: int, runs: int) -> tuple[float, float]:
    """Median checks/s over ``runs`` runs of ``fn`` (which performs ``n`` checks), and its spread."""
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates), (max(rates) - min(rates)) / 2


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
    math500 = read_jsonl(data / "math500" / "test.jsonl")
    golds = [r["answer"] for r in math500]
    boxed = [f"So the final answer is $\\boxed{{{g}}}$." for g in golds]
    numeric = [g for g in golds if plain_number(normalize(g)) is not None]
    num_boxed = [f"\\boxed{{{g}}}" for g in numeric]
    perm = list(range(len(golds)))
    random.Random(0).shuffle(perm)
    shuffled = [f"\\boxed{{{golds[j]}}}" for j in perm]
    gsm = read_jsonl(data / "gsm8k" / "test.jsonl") if (data / "gsm8k" / "test.jsonl").is_file() else []
    gsm_golds = [r["answer"] for r in gsm]
    gsm_comp = [f"Step by step.\n#### {g.rsplit('####', 1)[1].strip()}" for g in gsm_golds]

    results: dict[str, list[float | None]] = {}

    def run(name, comps, answers):
        def once():
            results[name] = ma(comps, answer=answers)
        return once

    rows = []
    r_all = rate(run("self", boxed, golds), len(golds), args.runs)
    r_num = rate(run("numeric", num_boxed, numeric), len(numeric), args.runs)
    base = rate(lambda: [check_symbolic(g, g) for g in numeric], len(numeric), max(1, args.runs // 2))
    rows.append(("MATH-500 self-check (\\boxed{gold})", len(golds), r_all, f"{sum(s == 1.0 for s in results['self']) / len(golds):.1%} scored 1"))
    rows.append(("  numeric answers only (fast path)", len(numeric), r_num, f"{r_num[0] / base[0]:.0f}x the sympy tier"))
    rows.append(("  numeric answers, sympy tier in-process (baseline)", len(numeric), base, "1x"))
    if gsm:
        r_gsm = rate(run("gsm", gsm_comp, gsm_golds), len(gsm), args.runs)
        rows.append(("GSM8K test (#### gold)", len(gsm), r_gsm, f"{sum(s == 1.0 for s in results['gsm']) / len(gsm):.1%} scored 1"))
    r_sh = rate(run("shuffle", shuffled, golds), len(golds), max(1, args.runs // 2))
    rows.append(("MATH-500 fixed shuffle (gold vs other row)", len(golds), r_sh, f"{sum(s == 1.0 for s in results['shuffle']) / len(golds):.1%} scored 1"))

    table = Table(title=f"math_answer on one core (median of {args.runs} runs)")
    for col in ("check", "n", "checks/s", "±", "note"):
        table.add_column(col, justify="left" if col in ("check", "note") else "right")
    for name, n, (med, spread), note in rows:
        table.add_row(name, str(n), f"{med:,.0f}", f"{spread:,.0f}", note)

    lat = Table(title=f"worst-case latency per call (hard limit {args.timeout:g} s)")
    for col in ("adversarial answer", "seconds", "score"):
        lat.add_column(col, justify="left" if col == "adversarial answer" else "right")
    worst = 0.0
    for name, text in ADVERSARIAL.items():
        t0 = time.perf_counter()
        score = ma([text], answer=[r"\frac{\sqrt{3}}{2}"])[0]
        dt = time.perf_counter() - t0
        worst = max(worst, dt)
        lat.add_row(name, f"{dt:.3f}", str(score))
    ok = ma([r"\boxed{\frac{\sqrt{3}}{2}}"], answer=[r"\frac{\sqrt{3}}{2}"]) == [1.0]
    lat.add_row("[bold]worst[/bold]", f"[bold]{worst:.3f}[/bold]", "healthy after" if ok else "[red]BROKEN[/red]")
    console = Console()
    console.print(table)
    console.print(lat)
    return 0 if ok and worst <= args.timeout + 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
