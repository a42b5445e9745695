"""The rollouts' per-step token pick over SmolLM2's 49,152-token vocabulary: log-softmax then exp (the pick before
commit 93b0c82) against one softmax pass (``rltk.rollouts.worker.pick_tokens``, what rollouts run now), each with the
inverse-CDF draw and the chosen token's log-prob; on one and two intra-op threads, at the row counts of a decode
step. Prints ms per step (medians), the ratio, and whether both pick the same tokens and how far apart their
log-probs are.

    python benchmarks/bench_pick.py
    python benchmarks/bench_pick.py --rows 8,44,88,128 --reps 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from machine_info import machine_line  # benchmarks/ (the script's folder)
from rltk.policy.decode import sample_tokens
from rltk.rollouts.worker import SamplingConfig, pick_tokens, process_logits

VOCAB = 49152


SAMPLING = SamplingConfig(temperature=1.0)  # the main job's: T = 1, no top-k / top-p


def log_softmax_pick(logits: torch.Tensor, uniforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logp = process_logits(logits, 1.0)
    nxt = sample_tokens(logp.exp(), uniforms)
    return nxt, logp.gather(-1, nxt[:, None]).squeeze(-1)


def median_ms(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="8,44,88,128")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    print(machine_line())
    print("| intra-op threads | rows | log-softmax + exp ms | one softmax ms | speed-up | same tokens | max log-prob gap |")
    print("|---|---|---|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    before = torch.get_num_threads()
    with torch.inference_mode():
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for rows in (int(r) for r in args.rows.split(",")):
                logits, u = torch.randn(rows, VOCAB, generator=g) * 3, torch.rand(rows, generator=g)
                old = median_ms(lambda: log_softmax_pick(logits, u), args.reps)
                new = median_ms(lambda: pick_tokens(logits, u, SAMPLING), args.reps)
                (t_old, lp_old), (t_new, lp_new) = log_softmax_pick(logits, u), pick_tokens(logits, u, SAMPLING)
                print(f"| {threads} | {rows} | {old:.2f} | {new:.2f} | {old / new:.1f}x | "
                      f"{bool(torch.equal(t_old, t_new))} | {float((lp_old - lp_new).abs().max()):.1e} |", flush=True)
    torch.set_num_threads(before)


if __name__ == "__main__":
    main()
