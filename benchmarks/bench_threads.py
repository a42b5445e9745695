"""One thread vs several threads of one process (``rltk.policy.parallel``) on the main job's work: the arithmetic
eval's items greedy and sampled (8 per item, T = 1) and GRPO rollouts (groups of 8, T = 1), on the dense copy of a
policy (an SFT adapter on the embedded SmolLM2, as the main job samples with), and the GRPO learner (the main job's
steps from that adapter, ``grpo.threads``).

    python benchmarks/bench_threads.py runs/demo-s26/sft/adapter --reps 3
    python benchmarks/bench_threads.py ADAPTER --threads 1,2 --items 300 --sampled-items 64 --learn-steps 3

The settings alternate within each repetition (1 thread, 2 threads, 1, 2, ...), so a drift of the machine's speed
hits both alike; medians of ``--reps`` (the learner: of every step of every repetition). Prints seconds, tokens/s,
the ratio to one thread, and whether the outputs agree with one thread's (sampled rows draw from their own
generators, so completions must be identical unless a rounding of the batch's padding flips a token; the learner's
steps must give the same rewards and losses).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from machine_info import machine_line  # benchmarks/ (the script's folder)
from main_work import main_job_work
from evals.generation import GenerationSettings, GenerationStats, generate, render_prompts
from evals.tasks import get_task
from rltk.grpo.loop import train
from rltk.policy import load_policy
from rltk.policy.sampler import dense_policy
from rltk.rollouts.worker import PromptRequest, RolloutWorker, SamplingConfig


def eval_case(policy, prompts: list[str], samples: int, threads: int) -> tuple[float, int, list[str]]:
    stats = GenerationStats()
    settings = GenerationSettings(max_new_tokens=48, temperature=1.0 if samples > 1 else 0.0, n_samples=samples,
                                  batch_size=256, threads=threads)
    out = generate(policy, prompts, settings, stats=stats)
    return stats.seconds, stats.tokens, [c.text for o in out for c in o]


def rollout_case(worker: RolloutWorker, requests: list[PromptRequest], threads: int) -> tuple[float, int, list[str]]:
    worker.sampling = dataclasses.replace(worker.sampling, threads=threads)
    t0 = time.perf_counter()
    groups = worker.generate(requests, seed=1)
    return time.perf_counter() - t0, sum(g.num_tokens for g in groups), [t for g in groups for t in g.texts]


def learner_case(adapter: str, steps: int, threads: int) -> tuple[float, int, list[str]]:
    """Median seconds/learn of ``steps`` GRPO steps of the main job from ``adapter``; the tokens the learner ran."""
    cfg = main_job_work(steps, tempfile.mkdtemp(prefix="bench-threads-"), {"name": "format_answer", "label": "unused",
                        "weight": 0.0}, grpo={"threads": threads, "lr": 2e-5}, init_adapter=adapter)
    hist = train(cfg).history
    outputs = [f"{h['reward_mean']:.6f} {h.get('loss')}" for h in hist]
    return statistics.median(h["seconds/learn"] for h in hist), sum(h["learn_tokens"] for h in hist) // steps, outputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapter")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--items", type=int, default=300)
    ap.add_argument("--sampled-items", type=int, default=64)
    ap.add_argument("--rollout-prompts", type=int, default=11)
    ap.add_argument("--learn-steps", type=int, default=3, help="GRPO steps per learner run (0: no learner case)")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    print(machine_line(), f"; torch intra-op threads {torch.get_num_threads()}")
    policy = load_policy("smollm2-135m", quant="nf4", adapter=args.adapter, trainable=False)
    task = get_task("arithmetic")
    rows = task.load(None)
    msgs = [[{"role": "system", "content": "Solve the problem. Finish your reply with a last line of the form "
              "'#### <answer>'."}, {"role": "user", "content": r["question"]}] for r in rows.rows[:args.items]]
    dense = dense_policy(policy)
    prompts = render_prompts(dense, msgs)
    worker = RolloutWorker(None, SamplingConfig(group_size=8, max_new_tokens=48), policy=policy)
    requests = [PromptRequest(i, {}, m) for i, m in enumerate(msgs[:args.rollout_prompts])]
    cases = {"eval greedy": lambda t: eval_case(dense, prompts, 1, t),
             "eval sampled x8": lambda t: eval_case(dense, prompts[:args.sampled_items], 8, t),
             "rollouts x8": lambda t: rollout_case(worker, requests, t)}
    if args.learn_steps:
        cases["GRPO learner steps"] = lambda t: learner_case(args.adapter, args.learn_steps, t)
    threads = [int(x) for x in args.threads.split(",")]
    print(f"| work | threads | s (median of {args.reps}) | tokens/s | vs {threads[0]} thread(s) | same outputs |")
    print("|---|---|---|---|---|---|")
    for name, case in cases.items():
        secs: dict[int, list[float]] = {t: [] for t in threads}
        toks, texts = {}, {}
        for _ in range(args.reps):
            for t in threads:
                s, n, txt = case(t)
                secs[t].append(s)
                toks[t], texts[t] = n, txt
        base = statistics.median(secs[threads[0]])
        for t in threads:
            med = statistics.median(secs[t])
            same = sum(a == b for a, b in zip(texts[t], texts[threads[0]])) / len(texts[t])
            print(f"| {name} ({len(texts[t])} outputs) | {t} | {med:.1f} | {toks[t] / med:.0f} | "
                  f"{base / med:.2f}x | {same:.1%} |", flush=True)


if __name__ == "__main__":
    main()
