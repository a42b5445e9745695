"""User-reward throughput before and after batching: rows scored per second by a sandboxed user reward.

* **per row, one by one**: ``RewardSet.score`` on one completion at a time (how a per-sample scorer calls it);
* **per row, parallel**: every row its own call, spread over the sandbox pool's workers (the path rltk took
  before batch calls, and still takes for the rows of a batch call that failed);
* **batch**: ``RewardSet.score`` on the whole batch: one call, as TRL calls a reward.

Two rewards from ``reward_fixtures.py``: ``digits_reward`` (cheap: the cost is the call itself) and
``fixed_cost_reward`` (10 ms per call, like a reward model's forward pass). Medians of ``--runs`` runs.

    python benchmarks/bench_reward_batching.py [--rows 64] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Callable

from machine_info import machine_line  # benchmarks/ (the script's folder)
from rewards import RewardSet, RewardSpec
from rewards.calls import sample_columns
from rewards.sandbox import get_pool

FIXTURES = Path(__file__).resolve().parent / "reward_fixtures.py"


def completions(n: int, seed: int = 0) -> tuple[list[str], list[list[int]]]:
    rng = random.Random(seed)
    texts = [f"{rng.randint(1, 99)} + {rng.randint(1, 99)} = {rng.randint(2, 198)}\n#### {rng.randint(2, 198)}" for _ in range(n)]
    return texts, [[rng.randint(0, 49151) for _ in range(8)] for _ in range(n)]


def timed(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm: workers started, reward module imported
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(name: str, rows: int, runs: int) -> dict[str, float]:
    rs = RewardSet([RewardSpec(f"{FIXTURES}:{name}", label="user")])
    texts, ids = completions(rows)
    comp = rs._components[0]  # the sandboxed target, for the per-row parallel path
    pool = get_pool("user", rs.processes, rs.isolation)
    items = [(([texts[i]],), sample_columns({"completion_ids": ids}, i, rows)) for i in range(rows)]
    batch = rs.score(texts, completion_ids=ids).total
    parallel = [o.value[0] for o in pool.run(comp.target, items, rs.timeout_s, chunk=1)]
    assert parallel == batch, "per-row and batch scores differ"
    return {
        "per row, one by one": rows / timed(lambda: [rs.score([texts[i]], completion_ids=[ids[i]]) for i in range(rows)], runs),
        "per row, parallel": rows / timed(lambda: pool.run(comp.target, items, rs.timeout_s, chunk=1), runs),
        "batch": rows / timed(lambda: rs.score(texts, completion_ids=ids), runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    results = {name: measure(name, args.rows, args.runs) for name in ("digits_reward", "fixed_cost_reward")}
    print(f"\n{machine_line()} · {args.rows} rows per call, medians of {args.runs} runs · sandbox workers "
          f"{RewardSet([RewardSpec(f'{FIXTURES}:digits_reward')]).processes}")
    print("| reward | per row, one by one (rows/s) | per row, parallel (rows/s) | batch (rows/s) | batch vs parallel |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['per row, one by one']:,.0f} | {r['per row, parallel']:,.0f} | {r['batch']:,.0f} | "
              f"{r['batch'] / r['per row, parallel']:.1f}x |")


if __name__ == "__main__":
    main()
