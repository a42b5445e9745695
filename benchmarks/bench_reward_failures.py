"""What a misbehaving reward costs a GRPO run, and what it trains on: healthy vs a reward that hangs on
about one sample in four, on the main job's work.

SmolLM2-135M-Instruct NF4 + LoRA r=16, 4 prompts x 8 completions, <= 48 new tokens; rewards math_answer +
format (built-ins) + a user reward run in the sandbox. In the *hanging* run that user reward sleeps past
the time limit on every completion whose first token id is divisible by 4. The two runs alternate
(healthy, hanging, healthy, hanging, ...) in this process, on the same loaded model, so a change in the
machine's load falls on both. The table shows the medians of steps 2.. (step 1 warms up), their ratio,
and checks from each hanging run's ``samples.jsonl`` that every failed sample has advantage 0 and that
the learner saw only the samples that scored.

    python benchmarks/bench_reward_failures.py                      # 2 rounds x 4 steps, reward_timeout_s 5
    python benchmarks/bench_reward_failures.py --timeout 2 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from machine_info import cpu_model  # benchmarks/ (the script's folder)
from main_work import main_job_work
from rltk.cli import quiet_libraries
from rltk.grpo import GRPOJobConfig, train
from rltk.policy import policy_from_config

FIXTURES = Path(__file__).resolve().parent / "reward_fixtures.py"  # light: sandbox workers import it


def job(reward: str, steps: int, timeout: float, run_dir: str, seed: int) -> GRPOJobConfig:
    return main_job_work(steps, run_dir, {"name": f"{FIXTURES}:{reward}", "label": "user", "weight": 0.1},
                         grpo={"micro_batch_size": 4}, reward_timeout_s=timeout, seed=seed,
                         log={"live": False, "samples_every": 1, "samples_groups": 4})


def one_run(kind: str, policy, steps: int, timeout: float, seed: int) -> dict:
    reward = "digits_reward" if kind == "healthy" else "hangs_on_a_quarter"
    cfg = job(reward, steps, timeout, tempfile.mkdtemp(prefix=f"bench-fail-{kind}-"), seed)
    result = train(cfg, policy=policy)
    hist = result.history[1:]
    samples = [json.loads(x) for x in (Path(result.run_dir) / "samples.jsonl").read_text().splitlines()]
    failed = [s for s in samples if s["failed"]]
    return {"seconds": [h["seconds/step"] for h in hist], "reward_s": [h["seconds/reward"] for h in hist],
            "failed": sum(h["failed_samples"] for h in result.history), "samples": 32 * len(result.history),
            "failed_adv_zero": all(s["advantage"] == 0.0 for s in failed),
            "learned_ok": all(h["sequences_learned"] <= 32 - h["failed_samples"] for h in result.history)}


def measure(args: argparse.Namespace) -> dict[str, list[dict]]:
    torch.manual_seed(0)
    policy = policy_from_config(job("digits_reward", 1, args.timeout, "unused", 0).model)
    runs: dict[str, list[dict]] = {"healthy": [], "hanging": []}
    for r in range(args.rounds):
        for kind in ("healthy", "hanging"):
            print(f"round {r + 1}/{args.rounds}: {kind} ...", flush=True)
            runs[kind].append(one_run(kind, policy, args.steps, args.timeout, seed=r))
    return runs


def report(runs: dict[str, list[dict]], args: argparse.Namespace) -> None:
    med = {k: statistics.median([s for r in v for s in r["seconds"]]) for k, v in runs.items()}
    rew = {k: statistics.median([s for r in v for s in r["reward_s"]]) for k, v in runs.items()}
    print(f"\nCPU: {cpu_model()} · torch threads {torch.get_num_threads()} · reward_timeout_s {args.timeout} · "
          f"{args.rounds} round(s) x {args.steps} steps, medians of steps 2..{args.steps}")
    print("| run | s/step | reward s/step | vs healthy | failed samples | failed -> advantage 0 | learner skips failed |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("healthy", "hanging"):
        rs = runs[kind]
        failed, total = sum(r["failed"] for r in rs), sum(r["samples"] for r in rs)
        print(f"| {kind} | {med[kind]:.1f} | {rew[kind]:.1f} | {med[kind] / med['healthy']:.2f}x | "
              f"{failed} of {total} ({100 * failed / total:.0f}%) | {all(r['failed_adv_zero'] for r in rs)} | "
              f"{all(r['learned_ok'] for r in rs)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=5.0, help="reward_timeout_s (default 5, the config default)")
    args = ap.parse_args()
    quiet_libraries()
    report(measure(args), args)


if __name__ == "__main__":
    main()
