"""Seconds per GRPO step (generation / reward / learner), tokens/s and peak RSS, QLoRA vs LoRA.

The main job's configuration: SmolLM2-135M-Instruct + LoRA r=16 on all linear layers, 4 prompts x 8
completions, <= 48 new tokens, temperature 1.0, on this machine's CPU cores. The comparison with TRL's
GRPOTrainer on the same work is measured (never typed in) by ``benchmarks/bench_vs_trl.py``.

Each configuration runs in its own process (peak RSS is per process): ``--steps`` GRPO steps
through ``rltk.grpo.train``; the table shows medians over steps 2.. (step 1 warms up kernels).
The rewards are the main job's (math_answer + format) plus a continuous length term, so every
group has a reward spread and the learner processes all 32 completions every step (the worst
case; with the real rewards alone, groups with equal rewards are skipped by the learner).

Peak RSS is reported twice: for the whole process (model loading included) and for the training
steps only (``VmHWM`` reset after loading via ``/proc/self/clear_refs``).

    python benchmarks/bench_grpo_step.py                 # nf4 and fp32, 6 steps each
    python benchmarks/bench_grpo_step.py --steps 10 --naive   # + the naive baseline (shared model sampling)
    python benchmarks/bench_grpo_step.py --configs qlora-nf4 --dtypes bf16 fp32   # the compute dtypes side by side

``--dtypes`` runs each configuration under each CPU compute dtype (``RLTK_CPU_DTYPE``; ``auto`` is the measured
choice of :func:`rltk.policy.devices.compute_dtype_choice`, printed in the header), one process each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch  # before rltk.cli, which defaults OMP_WAIT_POLICY: the runs' policy is the one --omp-wait gives

from machine_info import machine_line, rss_mb  # benchmarks/ (the script's folder)
from main_work import main_job_work
from rltk.cli import quiet_libraries
from rltk.grpo import train
from rltk.policy import policy_from_config

CONFIGS = {
    # name: (quant, sampler, micro_batch_size, dense_base)
    "qlora-nf4": ("nf4", "auto", 4, True),  # the main job's setting
    "qlora-nf4-mb8": ("nf4", "auto", 8, True),  # faster learner, more memory
    "lora-fp32": ("none", "auto", 4, True),
    # the naive loop: sample with the training model itself (unmerged LoRA, autocast re-casting fp32 weights
    # every step) and train on the fp32 base (autocast casts every weight at every forward)
    "naive-fp32": ("none", "shared", 8, False),
}


def length_shaping(completions, **columns):
    """Benchmark-only reward: a continuous term so every group has a reward spread."""
    return [-abs(len(c) - 40) / 40 for c in completions]


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_one(name: str, steps: int, out: str) -> None:
    quiet_libraries()
    quant, sampler, micro, dense_base = CONFIGS[name]
    length = {"name": f"{Path(__file__).resolve()}:length_shaping", "label": "length", "weight": 0.1}
    cfg = main_job_work(steps, tempfile.mkdtemp(prefix=f"bench-grpo-{name}-"), length, quant=quant,
                        sampling={"sampler": sampler}, grpo={"micro_batch_size": micro, "dense_base": dense_base})
    t0 = time.perf_counter()
    torch.manual_seed(0)
    policy = policy_from_config(cfg.model)
    load_s = time.perf_counter() - t0
    load_peak = rss_mb("VmHWM")
    reset = _reset_peak()
    result = train(cfg, policy=policy)
    hist = result.history
    Path(out).write_text(json.dumps({
        "name": f"{name} {os.environ.get('RLTK_CPU_DTYPE', 'auto')}", "load_s": load_s, "load_peak_mb": load_peak,
        "train_peak_mb": rss_mb("VmHWM") if reset else None, "process_peak_mb": max(load_peak, rss_mb("VmHWM")),
        "steps": [{k: h.get(k) for k in ("seconds/step", "seconds/generate", "seconds/reward", "seconds/learn",
                                         "generated_tokens", "tokens_per_s", "sequences_learned", "learn_tokens")}
                  for h in hist],
        "threads": torch.get_num_threads(),
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--configs", nargs="*", default=["qlora-nf4", "qlora-nf4-mb8", "lora-fp32"], choices=list(CONFIGS))
    ap.add_argument("--naive", action="store_true", help="also run the naive baseline (slow: ~1 min per step)")
    ap.add_argument("--omp-wait", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "default"],
                    help="OMP_WAIT_POLICY of the runs (PASSIVE: OpenMP threads sleep at barriers instead of spinning; "
                         "on a machine shared with other busy processes spinning made steps up to 50x slower)")
    ap.add_argument("--dtypes", nargs="*", default=["auto"], choices=["auto", "bf16", "fp32"],
                    help="CPU compute dtypes to run each config under (RLTK_CPU_DTYPE; default: the measured choice)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run_one(args.one, args.steps, args.out)
        return
    names = args.configs + (["naive-fp32"] if args.naive and "naive-fp32" not in args.configs else [])
    results = []
    for name, dtype in [(n, d) for n in names for d in args.dtypes]:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        print(f"running {name} {dtype} ({args.steps} steps)...", file=sys.stderr, flush=True)
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "RLTK_CPU_DTYPE": dtype}
        if args.omp_wait != "default":
            env["OMP_WAIT_POLICY"] = args.omp_wait
        else:
            env.pop("OMP_WAIT_POLICY", None)
        subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--out", out], check=True, env=env)
        results.append(json.loads(Path(out).read_text()))
        os.unlink(out)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"GRPO step, SmolLM2-135M + LoRA r=16, 4 prompts x 8, <= 48 tokens "
                        f"(medians of steps 2-{args.steps}, {os.cpu_count()} cores, OMP_WAIT_POLICY={args.omp_wait}, "
                        f"load average {os.getloadavg()[0]:.1f})")
    for col in ("config", "s/step", "generate", "reward", "learn", "gen tok/s", "peak RSS after load", "peak RSS process"):
        table.add_column(col, justify="right")
    for r in results:
        steps = r["steps"][1:] or r["steps"]
        med = {k: statistics.median(s[k] for s in steps if s[k] is not None)
               for k in ("seconds/step", "seconds/generate", "seconds/reward", "seconds/learn", "tokens_per_s")}
        peak = r["process_peak_mb"]
        table.add_row(r["name"], f"{med['seconds/step']:.1f}", f"{med['seconds/generate']:.1f}", f"{med['seconds/reward']:.2f}",
                      f"{med['seconds/learn']:.1f}", f"{med['tokens_per_s']:.0f}",
                      f"{r['train_peak_mb']:.0f} MB" if r["train_peak_mb"] else "–", f"{peak:.0f} MB")
    Console(width=200).print(table)
    print(machine_line())
    print(json.dumps(results))


if __name__ == "__main__":
    main()
