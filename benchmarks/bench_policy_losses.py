"""GRPO with each policy loss and sampler–learner correction on the main job's work: reward curve, sampled pass@1
(paired against ppo_clip), seconds per step.

    python benchmarks/bench_policy_losses.py RUN/sft/adapter                      # 5 variants x 30 steps, 300 items
    python benchmarks/bench_policy_losses.py RUN/sft/adapter --steps 2 --n 20     # a smoke run
    python benchmarks/bench_policy_losses.py RUN/sft/adapter --variants ppo_clip gspo --mu 1 --set grpo.lr=3e-5

Every variant is the main job, ``examples/arithmetic/grpo.yaml`` (its model, data, sampling, rewards and ``grpo:``
section), started from the given SFT adapter (``init_adapter``; no warm start), run by the job pipeline
(:func:`rltk.grpo.job.run_job`) in a process of its own: the SFT adapter's greedy eval, ``--steps`` GRPO steps with the
variant's ``grpo.policy_loss`` / ``grpo.is_correction``, then greedy accuracy and sampled pass@1 (``eval.samples``
completions per item at the training temperature) on the same ``--n`` held-out arithmetic items. Same seed for
all: the same prompts at step 1, the same eval items; pass@1 is compared with ppo_clip's item by item
(:func:`evals.compare`, paired bootstrap).

``--mu`` defaults to 2, not the main job's 1: on-policy with ``mu: 1`` the old log-probs are the current ones
(ratio 1), where ppo_clip, gspo and cispo have the same gradient (``-A ∇logp`` per token, see
:mod:`rltk.policy_losses`), so the table would compare seeds, not losses. tis / mis act at ``mu: 1`` too (the
sampler's merged dense copy is not the learner's base + LoRA); ``mismatch mean/max`` shows by how much.
The run folders (metrics.jsonl, evals, adapters) stay under ``--out`` (default ``runs/bench-policy-losses-TIME``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine_info import machine_line  # benchmarks/ (the script's folder)
from evals import compare, load_result
from rltk.cli import quiet_libraries
from rltk.grpo import load_job_config, run_job

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "arithmetic" / "grpo.yaml"
VARIANTS = {  # name: its overrides of the grpo: section
    "ppo_clip": ["grpo.policy_loss=ppo_clip"],
    "gspo": ["grpo.policy_loss=gspo"],
    "cispo": ["grpo.policy_loss=cispo"],
    "ppo_clip+tis": ["grpo.policy_loss=ppo_clip", "grpo.is_correction=tis"],
    "ppo_clip+mis": ["grpo.policy_loss=ppo_clip", "grpo.is_correction=mis"],
}
STEP_KEYS = ("reward_mean", "accuracy", "clip_fraction", "mismatch_ratio_mean", "mismatch_ratio_max",
             "is_corrected_fraction", "seconds/step", "completion_len")


def overrides(args: argparse.Namespace, variant: str, run_dir: Path) -> list[str]:
    return ["warm_start=null", f"init_adapter={Path(args.adapter).resolve()}", f"grpo.steps={args.steps}",
            f"grpo.mu={args.mu}", f"eval.n={args.n}", "eval.sampled_stages=[grpo]", "checkpoint.every=0",
            "log.live=false", f"run_dir={run_dir}", *VARIANTS[variant], *args.set]


def run_one(args: argparse.Namespace) -> None:
    """One variant through the job pipeline, in this process; its record as JSON to ``args.record``."""
    quiet_libraries()
    run_dir = Path(args.out) / args.one
    cfg = load_job_config(CONFIG, overrides(args, args.one, run_dir))
    t0 = time.perf_counter()
    job = run_job(cfg, live=False)
    Path(args.record).write_text(json.dumps({
        "variant": args.one, "wall_s": time.perf_counter() - t0, "run_dir": str(job.run_dir),
        "steps": [{k: h.get(k) for k in STEP_KEYS} for h in job.grpo.history],
        "start_accuracy": job.summary["accuracy"].get("start"), "accuracy": job.summary["accuracy"].get("grpo"),
        "pass1": job.summary["pass1_sampled"].get("grpo"), "sampled": str(job.run_dir / "evals" / "grpo_sampled.json"),
    }))


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.fmean(vals) if vals else None


def _f(x: float | None, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


def table(records: list[dict], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    base = next((r for r in records if r["variant"] == "ppo_clip"), None)
    t = Table(title=f"GRPO policy losses: {CONFIG.relative_to(ROOT)} from {args.adapter}, {args.steps} steps, mu {args.mu}, "
                    f"pass@1 on {args.n} held-out items")
    for col in ("variant", "reward last step", "reward first 5 -> last 5", "clip frac", "mismatch mean / max",
                "corrected", "greedy acc", "pass@1", "vs ppo_clip [95% CI]", "p (paired)", "s/step"):
        t.add_column(col, justify="right")
    for r in records:
        steps = r["steps"]
        rewards = [s["reward_mean"] for s in steps]
        k = min(5, len(steps))
        diff, p = "–", "–"
        if base is not None and r is not base:
            c = compare(load_result(base["sampled"]), load_result(r["sampled"]), a_name="ppo_clip", b_name=r["variant"])
            diff, p = f"{c.diff:+.3f} [{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]", f"{c.p_value:.3f}"
        t.add_row(r["variant"], _f(rewards[-1] if rewards else None),
                  f"{_f(_mean(rewards[:k]))} -> {_f(_mean(rewards[-k:]))}", _f(_mean([s['clip_fraction'] for s in steps])),
                  f"{_f(_mean([s['mismatch_ratio_mean'] for s in steps]), '.4f')} / "
                  f"{_f(max((s['mismatch_ratio_max'] for s in steps if s['mismatch_ratio_max'] is not None), default=None), '.2f')}",
                  _f(_mean([s["is_corrected_fraction"] for s in steps]), ".4f"), _f(r["accuracy"]), _f(r["pass1"]), diff, p,
                  _f(_mean([s["seconds/step"] for s in steps]), ".1f"))
    Console(width=220).print(t)
    if records:
        print(f"the SFT adapter's greedy accuracy on the same items: {_f(records[0]['start_accuracy'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapter", help="the SFT adapter GRPO starts from (e.g. RUN/sft/adapter of `rltk grpo grpo.yaml`)")
    ap.add_argument("--steps", type=int, default=30, help="GRPO steps per variant")
    ap.add_argument("--n", type=int, default=300, help="held-out eval items (eval.n)")
    ap.add_argument("--mu", type=int, default=2, help="optimizer steps per batch of rollouts (see above: 1 makes the losses agree)")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more config overrides, for every variant")
    ap.add_argument("--out", default=None, help="folder for the runs (default runs/bench-policy-losses-TIME)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--record", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run_one(args)
        return
    if not Path(args.adapter, "adapter_config.json").is_file():
        ap.error(f"{args.adapter} is not a peft adapter folder (no adapter_config.json)")
    out = Path(args.out or f"runs/bench-policy-losses-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=False)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    records = []
    for variant in args.variants:
        print(f"running {variant} ({args.steps} steps, mu {args.mu})...", file=sys.stderr, flush=True)
        record = out / f"{variant}.json"
        cmd = [sys.executable, __file__, args.adapter, "--one", variant, "--record", str(record), "--out", str(out),
               "--steps", str(args.steps), "--n", str(args.n), "--mu", str(args.mu), "--set", *args.set]
        subprocess.run(cmd, check=True, env=env)
        records.append(json.loads(record.read_text()))
    table(records, args)
    print(machine_line())
    print(f"runs: {out}")


if __name__ == "__main__":
    main()
