"""Distributed GRPO on Ray (issue 6): what a weight sync costs, and rollout throughput with Ray workers.

For the embedded SmolLM2-135M-Instruct, 4-bit NF4 base + LoRA r=16 on all linear layers:

1. **Weight sync**: bytes of one sync (the LoRA tensors only) against the full model's size, and the
   sync time measured inside the GRPO loop (``sync_seconds``: one ``ray.put`` + every worker loaded it).
   For contrast, the same transfer of the full fp32 state dict (what a full-weight sync would ship).
2. **Throughput**: real GRPO steps (rollout → reward → learner → sync) on the arithmetic task with
   ``math_answer``, in-process (``workers=0``, the baseline) and with 1 and 2 Ray rollout workers,
   synchronous and pipelined (one-step-off-policy: step t+1 is generated while the learner updates
   on step t), with ``beta = 0.04`` so the learner has work every step. A step's wall time runs from
   the end of its rollout collection to the end of the next one (the last step: to the run's end);
   the figures are medians over the measured steps (the first ``--warmup`` steps are dropped).
   Rollout throughput = completion tokens sampled per wall-clock second of training.

The Ray instance is private and bound to 127.0.0.1. Cores are shared by the driver (learner) and the
workers: on a 2-core machine more workers cannot be faster; the table says what was measured.

    python benchmarks/bench_distributed.py                  # 1 warm-up + 4 measured steps per mode
    python benchmarks/bench_distributed.py --steps 3 --max-new-tokens 24    # quicker
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

MODES = [  # (label, workers, pipeline)
    ("in-process (baseline)", 0, False),
    ("in-process, pipelined", 0, True),
    ("Ray, 1 worker", 1, False),
    ("Ray, 1 worker, pipelined", 1, True),
    ("Ray, 2 workers", 2, False),
    ("Ray, 2 workers, pipelined", 2, True),
]


class StepClock:
    """Wraps the loop's rollout backend: when each step's rollouts were collected, and how long the loop
    waited on rollouts in each step (submit + collect: in-process, submit does the sampling; on Ray, collect waits)."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.collected_at: list[float] = []
        self.waits: list[float] = []  # per step
        self._wait = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit(self, requests: Any, seed: int) -> Any:
        t0 = time.perf_counter()
        handle = self.inner.submit(requests, seed)
        self._wait += time.perf_counter() - t0
        return handle

    def collect(self, handle: Any) -> Any:
        t0 = time.perf_counter()
        groups = self.inner.collect(handle)
        now = time.perf_counter()
        self.collected_at.append(now)
        self.waits.append(self._wait + now - t0)
        self._wait = 0.0
        return groups

    def sync(self, state: Any, version: int) -> dict[str, float]:
        return self.inner.sync(state, version)

    def events(self) -> list[str]:
        return self.inner.events()

    def close(self) -> None:
        self.inner.close()


@dataclass
class ModeResult:
    label: str
    step_s: float  # median wall seconds per step
    tokens_per_step: float
    wait_s: float  # median time a step waited on rollouts (submit + collect, + a pipelined sync's wait for them)
    learn_s: float  # median of the loop's learn phase (includes the sync)
    sync_s: float | None
    sync_bytes: float | None
    threads: str
    load: float  # 1-minute load average when the mode finished (other processes on the same cores)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_s


def job(args: argparse.Namespace, workers: int, pipeline: bool, run_dir: Path) -> Any:
    from rewards import RewardSpec

    from rltk.data import DataConfig
    from rltk.grpo import CheckpointConfig, DistributedConfig, GRPOConfig, GRPOJobConfig, LogConfig
    from rltk.models import LoraSettings, ModelConfig
    from rltk.rollouts import SamplingConfig

    cores = os.cpu_count() or 1
    return GRPOJobConfig(
        model=ModelConfig(spec="smollm2-135m", quant="nf4", lora=LoraSettings(r=16, alpha=32)),
        data=DataConfig(source="arithmetic", limit=2000),
        sampling=SamplingConfig(group_size=args.group, max_new_tokens=args.max_new_tokens, temperature=1.0),
        # beta > 0 (the GRPO paper's 0.04): the learner runs on every sequence each step (reference + policy
        # passes), even when a group's rewards are all equal, so every step has learner work to overlap with
        grpo=GRPOConfig(steps=args.warmup + args.steps, prompts_per_step=args.prompts, lr=1e-5, beta=0.04),
        rewards=[RewardSpec("math_answer")],
        checkpoint=CheckpointConfig(every=0),
        log=LogConfig(samples_every=0, live=False),
        distributed=DistributedConfig(workers=workers, pipeline=pipeline,
                                      num_cpus_per_worker=max(1.0, cores / max(workers, 1)), max_restarts=0),
        seed=args.seed,
        run_dir=str(run_dir),
    )


def run_mode(args: argparse.Namespace, label: str, workers: int, pipeline: bool, tmp: Path) -> ModeResult:
    from rltk.distributed import make_backend
    from rltk.grpo import train
    from rltk.models import policy_from_config

    cfg = job(args, workers, pipeline, tmp / label.replace(" ", "_").replace(",", ""))
    torch.manual_seed(cfg.seed)
    policy = policy_from_config(cfg.model, trainable=True)
    backend = make_backend(cfg.distributed, cfg.model, cfg.sampling, cfg.seed, None, policy=policy)
    threads = (f"driver {torch.get_num_threads()}" if workers == 0 else
               f"driver {torch.get_num_threads()}, workers " + "/".join(str(w["threads"]) for w in backend.worker_info()))
    clock = StepClock(backend)
    result = train(cfg, policy=policy, backend=clock, live=False)
    times = clock.collected_at[args.warmup:] + [time.perf_counter()]  # one collection per step (no dynamic sampling)
    periods = [b - a for a, b in zip(times, times[1:])]  # a step: from its rollouts in hand to the next step's
    hist = result.history[args.warmup:]
    syncs = [r["sync_seconds"] for r in hist if r.get("sync_seconds") is not None and workers > 0]
    sizes = [r["sync_bytes"] for r in hist if r.get("sync_bytes") and workers > 0]
    return ModeResult(
        label=label,
        step_s=statistics.median(periods) if periods else float("nan"),
        tokens_per_step=statistics.median(r["generated_tokens"] for r in hist),
        wait_s=statistics.median(w + (r.get("sync_wait_seconds") or 0.0)
                                 for w, r in zip(clock.waits[args.warmup:], hist)),
        learn_s=statistics.median(r["seconds/learn"] - (r.get("sync_wait_seconds") or 0.0) for r in hist),
        sync_s=statistics.median(syncs) if syncs else None,
        sync_bytes=statistics.median(sizes) if sizes else None,
        threads=threads,
        load=os.getloadavg()[0],
    )


def full_model_transfer(workers: int, repeats: int) -> tuple[int, float]:
    """Bytes of the full fp32 state dict and the median time to put it once and have ``workers`` processes fetch it."""
    import ray

    from rltk.distributed import state_nbytes
    from rltk.models import load_policy

    full = load_policy("smollm2-135m", quant="none", lora=None, trainable=False)
    state = {k: v.detach().contiguous() for k, v in full.model.state_dict().items()}
    del full

    @ray.remote(num_cpus=0.5)
    def fetch(s: dict) -> int:
        return sum(t.numel() for t in s.values())

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ref = ray.put(state)
        ray.get([fetch.remote(ref) for _ in range(workers)])
        times.append(time.perf_counter() - t0)
        del ref
    return state_nbytes(state), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4, help="measured steps per mode (medians over these)")
    ap.add_argument("--warmup", type=int, default=1, help="steps dropped before measuring")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="all", help="comma-separated mode numbers 1-6 (see MODES), or all")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from rich.console import Console
    from rich.table import Table

    from rltk.distributed import state_nbytes
    from rltk.models import LoraSettings, footprint_bytes, load_policy, trainable_state
    from rltk.ray_utils import connect

    console = Console(width=150)
    cores = os.cpu_count() or 1
    console.print(f"[bold]machine[/bold]: {cores} CPU cores (os.cpu_count), {len(os.sched_getaffinity(0))} usable; "
                  f"load average {os.getloadavg()[0]:.2f} at start; torch {torch.__version__}, {torch.get_num_threads()} threads")
    console.print(f"job: {args.prompts} prompts x {args.group} completions, <= {args.max_new_tokens} new tokens, T = 1.0; "
                  f"{args.warmup} warm-up + {args.steps} measured steps per mode")

    # --- what one sync moves
    pol = load_policy("smollm2-135m", quant="nf4", lora=LoraSettings(r=16, alpha=32))
    lora_bytes = state_nbytes(trainable_state(pol.model))
    nf4_bytes = footprint_bytes(pol.model)
    del pol

    session = connect(None, num_cpus=cores + 1)  # one private loopback Ray for every mode
    try:
        picked = MODES if args.modes == "all" else [MODES[int(i) - 1] for i in args.modes.split(",")]
        results = []
        with tempfile.TemporaryDirectory(prefix="rltk-bench-dist-") as tmp:
            for label, workers, pipeline in picked:
                console.print(f"running: {label} ...")
                results.append(run_mode(args, label, workers, pipeline, Path(tmp)))
        full_bytes, full_s = full_model_transfer(2, repeats=3)
    finally:
        session.close()

    t = Table(title="Weight sync: SmolLM2-135M, NF4 base + LoRA r=16 (all linear layers)")
    t.add_column("what crosses to the workers")
    t.add_column("bytes", justify="right")
    t.add_column("vs full fp32", justify="right")
    t.add_column("time (median)", justify="right")
    t.add_row("LoRA tensors only (rltk's sync)", f"{lora_bytes / 1e6:.2f} MB", f"{lora_bytes / full_bytes:.2%}", "see below")
    t.add_row("4-bit base as loaded (never sent)", f"{nf4_bytes / 1e6:.1f} MB", f"{nf4_bytes / full_bytes:.1%}", "-")
    t.add_row("full model, fp32 state dict", f"{full_bytes / 1e6:.1f} MB", "100%",
              f"{full_s * 1e3:.0f} ms (put + 2 processes fetch)")
    for r in results:
        if r.sync_s is not None:
            t.add_row(f"  LoRA sync in the loop: {r.label}", f"{(r.sync_bytes or 0) / 1e6:.2f} MB",
                      f"{(r.sync_bytes or 0) / full_bytes:.2%}", f"{r.sync_s * 1e3:.1f} ms")
    console.print(t)

    base = next((r for r in results if r.label.startswith("in-process (baseline)")), None)
    t = Table(title=f"GRPO step throughput on {cores} CPU cores (medians over {args.steps} steps)")
    for col in ("mode", "threads", "s / step", "rollout tokens / s", "vs in-process", "wait for rollouts s",
                "learn + sync s", "load avg"):
        t.add_column(col, justify="left" if col in ("mode", "threads") else "right")
    for r in results:
        ratio = f"{r.tokens_per_s / base.tokens_per_s:.2f}x" if base else "-"
        t.add_row(r.label, r.threads, f"{r.step_s:.2f}", f"{r.tokens_per_s:.1f}", ratio, f"{r.wait_s:.2f}",
                  f"{r.learn_s:.2f}", f"{r.load:.1f}")
    console.print(t)
    console.print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes share these cores)")


if __name__ == "__main__":
    main()
