"""Load times and memory footprints of the embedded model (issue: foundation).

Each measurement runs in a fresh subprocess, so "warm" means "cache on disk", not "already in RAM".
Cold = first load with an empty cache (GGUF dequantization + safetensors write); warm = from the cache.

    python benchmarks/bench_load.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from machine_info import machine_line  # benchmarks/ (the script's folder)

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from rltk.policy import load_policy, footprint_bytes, LoraSettings
t1 = time.perf_counter()
quant = sys.argv[1]
pol = load_policy("smollm2-135m", quant=quant, lora=None)
t2 = time.perf_counter()
print(json.dumps({"load_s": t2 - t1, "import_s": t1 - t0, "footprint_mb": footprint_bytes(pol.model) / 1e6,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(quant: str, cache: str) -> dict:
    env = dict(os.environ, RLTK_CACHE=cache, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run([sys.executable, "-c", CHILD, quant], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    rows = []
    cold = []
    for _ in range(max(1, args.repeats // 2)):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(run("none", cache))
    rows.append(("cold (convert GGUF + cache)", "none", cold))
    with tempfile.TemporaryDirectory() as cache:
        run("none", cache)  # fill the cache
        for quant in ("none", "nf4"):
            rows.append(("warm (from cache)", quant, [run(quant, cache) for _ in range(args.repeats)]))

    t = Table(title=f"SmolLM2-135M-Instruct load ({os.cpu_count()} cores, medians of {args.repeats})")
    for col in ("load", "quant", "seconds", "footprint MB", "peak RSS MB", "footprint vs fp32"):
        t.add_column(col)
    fp32 = statistics.median(r["footprint_mb"] for r in rows[1][2])
    for name, quant, rs in rows:
        fp = statistics.median(r["footprint_mb"] for r in rs)
        t.add_row(name, quant, f"{statistics.median(r['load_s'] for r in rs):.2f}", f"{fp:.0f}",
                  f"{statistics.median(r['peak_rss_mb'] for r in rs):.0f}", f"{fp / fp32:.2f}")
    Console().print(t)
    print(machine_line())


if __name__ == "__main__":
    main()
