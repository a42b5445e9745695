"""Distributed GRPO on Ray (issue 6): what a weight sync costs, and rollout throughput with Ray workers.

For the embedded SmolLM2-135M-Instruct, 4-bit NF4 base + LoRA r=16 on all linear layers:

1. **Weight sync**: bytes of one sync (the LoRA tensors only) against the full model's size, and the
   sync time measured inside the GRPO loop (``sync_seconds``: one ``ray.put`` + every worker loaded it).
   For contrast, the same transfer of the full fp32 state dict (what a full-weight sync would ship).
2. **Throughput**: real GRPO steps (rollout → reward → learner → sync) on the arithmetic task with
   ``math_answer``, in-process (``workers=0``, the baseline) and with 1 and 2 Ray rollout workers,
   synchronous and pipelined (one-step-off-policy: step t+1 is generated while the learner updates
   on step t), with ``beta = 0.04`` so the learner has work every step. A step's wall time runs from
   the end of its rollout collection to the end of the next one. All modes' workers stay up for the
   whole benchmark and the modes take turns, run by run, for ``--rounds`` rounds, so a change in the
   machine's load (other processes) falls on every mode alike; in each run of ``--steps-per-run``
   steps the first (nothing in flight yet) and the last (its period would include the run's end)
   are not measured. Figures are medians over the measured steps. Rollout throughput = completion
   tokens sampled per wall-clock second of training.

The Ray instance is private and bound to 127.0.0.1. Cores are shared by the driver (learner) and the
workers: on a 2-core machine more workers cannot be faster; the table says what was measured.

``--pin`` simulates two 1-core machines on two cores (``distributed.learner_cores`` / ``worker_cores``): the
learner (the driver, every thread) runs on core 0 and the Ray worker on core 1, so generation on the worker can
overlap learning only where the loop lets it (pipelined); the in-process modes then run on core 0 alone (one
1-core machine, the baseline). Modes 1-4 only (two workers would need three cores).

    python benchmarks/bench_distributed.py                      # 3 rounds x 4 steps per mode
    python benchmarks/bench_distributed.py --rounds 2 --max-new-tokens 24    # quicker
    python benchmarks/bench_distributed.py --pin --modes 1,3,4               # 2 x 1 core: overlap on Ray
"""

from __future__ import annotations

import os

# set before anything reads it (huggingface_hub reads it when imported): the embedded model is local
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from machine_info import machine_line  # noqa: E402  (benchmarks/, the script's folder)
from rltk.cli import quiet_libraries  # noqa: E402

# silence the libraries' load-time chatter before rltk.models loads them (bitsandbytes' kernel notice, ...)
quiet_libraries()

from rewards import RewardSpec  # noqa: E402
from rltk.data import DataConfig  # noqa: E402
from rltk.grpo import CheckpointConfig, GRPOConfig, GRPOJobConfig, LogConfig, train  # noqa: E402
from rltk.models import (LoraSettings, ModelConfig, footprint_bytes, load_policy, policy_from_config,  # noqa: E402
                         trainable_state)
from rltk.rollouts import (DistributedConfig, LocalRollouts, RolloutWorker, SamplingConfig,  # noqa: E402
                           make_backend)
from rltk.rollouts.ray_session import connect  # noqa: E402
from rltk.rollouts.ray_shares import state_nbytes  # noqa: E402

MODEL = ModelConfig(spec="smollm2-135m", quant="nf4", lora=LoraSettings(r=16, alpha=32))
MODES = [  # (label, workers, pipeline)
    ("in-process (baseline)", 0, False),
    ("in-process, pipelined", 0, True),
    ("Ray, 1 worker", 1, False),
    ("Ray, 1 worker, pipelined", 1, True),
    ("Ray, 2 workers", 2, False),
    ("Ray, 2 workers, pipelined", 2, True),
]
Mode = tuple[str, int, bool]


class StepClock:
    """Wraps a rollout backend for one run: when each step's rollouts were collected, and how long the loop
    waited on rollouts in each step (submit + collect: in-process, submit does the sampling; on Ray, collect waits).
    Leaves the backend open when the run ends: the same workers serve every round."""

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
        pass


@dataclass
class ModeSamples:
    """Per-step measurements of one mode, pooled over the rounds."""

    label: str
    threads: str = ""
    periods: list[float] = field(default_factory=list)  # wall seconds per step
    tokens: list[float] = field(default_factory=list)  # completion tokens per step
    waits: list[float] = field(default_factory=list)  # seconds the step waited on rollouts
    learns: list[float] = field(default_factory=list)  # seconds of learner + sync (without a pipelined sync's wait)
    syncs: list[float] = field(default_factory=list)
    sync_bytes: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)  # 1-minute load average after each round of this mode

    @property
    def step_s(self) -> float:
        return statistics.median(self.periods)

    @property
    def tokens_per_s(self) -> float:
        return statistics.median(t / p for t, p in zip(self.tokens, self.periods))


def dist_config(args: argparse.Namespace, workers: int, cores: int, **more: Any) -> DistributedConfig:
    """A mode's ``distributed:`` section: the cores split among the workers, or with ``--pin`` one CPU and core 1
    per worker (the learner's core, ``learner_cores``, is the job's)."""
    return DistributedConfig(workers=workers, max_restarts=0, worker_cores=[[1]] * workers if args.pin else None,
                             num_cpus_per_worker=1.0 if args.pin else max(1.0, cores / max(workers, 1)), **more)


def job(args: argparse.Namespace, workers: int, pipeline: bool, run_dir: Path) -> Any:
    cores = os.cpu_count() or 1
    return GRPOJobConfig(
        model=MODEL,
        data=DataConfig(source="arithmetic", limit=2000),
        sampling=SamplingConfig(group_size=args.group, max_new_tokens=args.max_new_tokens, temperature=1.0),
        # beta > 0 (the GRPO paper's 0.04): the learner runs on every sequence each step (reference + policy
        # passes), even when a group's rewards are all equal, so every step has learner work to overlap with
        grpo=GRPOConfig(steps=args.steps_per_run, prompts_per_step=args.prompts, lr=1e-5, beta=0.04),
        rewards=[RewardSpec("math_answer")],
        checkpoint=CheckpointConfig(every=0),
        log=LogConfig(samples_every=0, live=False),
        distributed=dist_config(args, workers, cores, pipeline=pipeline, learner_cores=[0] if args.pin else None),
        seed=args.seed,
        run_dir=str(run_dir),
    )


def run_round(args: argparse.Namespace, mode: ModeSamples, workers: int, pipeline: bool, policy: Any, backend: Any,
              run_dir: Path, round_: int) -> None:
    """One GRPO run of ``args.steps_per_run`` steps; records steps 2 .. n-1 (the first has nothing in flight
    before it, and the last one's period would include the end of the run)."""
    cfg = job(args, workers, pipeline, run_dir)
    clock = StepClock(backend)
    result = train(dataclasses.replace(cfg, seed=args.seed + round_), policy=policy, backend=clock, live=False)
    t = clock.collected_at
    keep = range(1, len(t) - 1)
    mode.periods += [t[i + 1] - t[i] for i in keep]
    hist = result.history
    mode.tokens += [hist[i]["sampled_tokens"] for i in keep]
    mode.waits += [clock.waits[i] + (hist[i].get("sync_wait_seconds") or 0.0) for i in keep]
    mode.learns += [hist[i]["seconds/learn"] - (hist[i].get("sync_wait_seconds") or 0.0) for i in keep]
    if workers > 0:
        mode.syncs += [hist[i]["sync_seconds"] for i in keep if hist[i].get("sync_seconds") is not None]
        mode.sync_bytes += [hist[i]["sync_bytes"] for i in keep if hist[i].get("sync_bytes")]
    mode.loads.append(os.getloadavg()[0])


def full_model_transfer(workers: int, repeats: int) -> tuple[int, float]:
    """Bytes of the full fp32 state dict and the median time to put it once and have ``workers`` processes fetch it."""
    import ray

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



def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each runs every mode once, in turn")
    ap.add_argument("--steps-per-run", type=int, default=4,
                    help="GRPO steps per run; steps 2 .. n-1 of each are measured")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="all", help="comma-separated mode numbers 1-6 (see MODES), or all")
    ap.add_argument("--pin", action="store_true",
                    help="2 x 1 core: learner on core 0, the Ray worker on core 1 (modes 1-4)")
    return ap.parse_args()


def print_setup(console: Console, args: argparse.Namespace, cores: int) -> None:
    """The machine and the job, before anything is measured."""
    console.print(f"[bold]machine[/bold]: {cores} CPU cores (os.cpu_count), {len(os.sched_getaffinity(0))} usable; "
                  f"load average {os.getloadavg()[0]:.2f} at start; torch {torch.__version__}, {torch.get_num_threads()} threads")
    console.print(f"job: {args.prompts} prompts x {args.group} completions, <= {args.max_new_tokens} new tokens, T = 1.0, "
                  f"beta 0.04; {args.rounds} rounds x {args.steps_per_run} steps per mode "
                  f"({max(args.steps_per_run - 2, 0)} measured per run)")


def sync_sizes() -> tuple[int, int]:
    """What one sync moves: bytes of the LoRA tensors, and the 4-bit base's footprint as loaded."""
    pol = load_policy("smollm2-135m", quant="nf4", lora=LoraSettings(r=16, alpha=32))
    lora_bytes = state_nbytes(trainable_state(pol.model))
    nf4_bytes = footprint_bytes(pol.model)
    del pol
    return lora_bytes, nf4_bytes


def make_backends(args: argparse.Namespace, picked: list[Mode], policy: Any, cores: int) -> dict[int, Any]:
    """One rollout backend per worker count of the picked modes: in-process on the learner's policy for 0."""
    sampling = job(args, 0, False, Path(".")).sampling
    backends: dict[int, Any] = {}
    for _, workers, _ in picked:
        if workers not in backends:
            backends[workers] = (
                LocalRollouts(RolloutWorker(MODEL, sampling, seed=args.seed, policy=policy)) if workers == 0 else
                make_backend(dist_config(args, workers, cores), MODEL, sampling, args.seed, None))
    return backends


def measure_modes(console: Console, args: argparse.Namespace, picked: list[Mode], cores: int) -> list[ModeSamples]:
    """Every picked mode, ``args.rounds`` times, taking turns run by run (on Ray already connected)."""
    torch.manual_seed(args.seed)
    policy = policy_from_config(MODEL, trainable=True)
    backends = make_backends(args, picked, policy, cores)
    modes = {label: ModeSamples(label) for label, _, _ in picked}
    for label, workers, _ in picked:
        b = backends[workers]
        driver = "driver core 0, 1 thread" if args.pin else f"driver {torch.get_num_threads()}"
        modes[label].threads = (driver if workers == 0 else f"{driver}, workers " + "/".join(
            (f"core {','.join(map(str, w['cores']))}, " if args.pin else "") + f"{w['threads']} thread(s)"
            for w in b.worker_info()))
    with tempfile.TemporaryDirectory(prefix="rltk-bench-dist-") as tmp:
        for round_ in range(args.rounds):
            for label, workers, pipeline in picked:
                console.print(f"round {round_ + 1}/{args.rounds}: {label} ...")
                run_round(args, modes[label], workers, pipeline, policy, backends[workers],
                          Path(tmp) / f"r{round_}-{workers}-{int(pipeline)}", round_)
    results = [modes[label] for label, _, _ in picked]
    for b in backends.values():
        b.close()
    return results


def sync_table(results: list[ModeSamples], lora_bytes: int, nf4_bytes: int, full_bytes: int, full_s: float) -> Table:
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
        if r.syncs:
            size = statistics.median(r.sync_bytes)
            t.add_row(f"  LoRA sync in the loop: {r.label}", f"{size / 1e6:.2f} MB", f"{size / full_bytes:.2%}",
                      f"{statistics.median(r.syncs) * 1e3:.1f} ms")
    return t


def throughput_table(results: list[ModeSamples], cores: int, rounds: int, pin: bool = False) -> Table:
    base = next((r for r in results if r.label.startswith("in-process (baseline)")), None)
    n = len(results[0].periods) if results else 0
    where = "2 x 1 core (learner core 0, Ray worker core 1; in-process: core 0 only)" if pin else f"{cores} CPU cores"
    t = Table(title=f"GRPO step throughput on {where} (medians over {n} steps per mode, {rounds} interleaved rounds)")
    for col in ("mode", "threads", "s / step", "rollout tokens / s", "vs in-process", "wait for rollouts s",
                "learn + sync s", "load avg (1 min)"):
        t.add_column(col, justify="left" if col in ("mode", "threads") else "right")
    for r in results:
        ratio = f"{r.tokens_per_s / base.tokens_per_s:.2f}x" if base else "-"
        t.add_row(r.label, r.threads, f"{r.step_s:.2f}", f"{r.tokens_per_s:.1f}", ratio,
                  f"{statistics.median(r.waits):.2f}", f"{statistics.median(r.learns):.2f}",
                  f"{min(r.loads):.1f}-{max(r.loads):.1f}")
    return t


def main() -> None:
    args = parse_args()
    console = Console(width=150)
    cores = os.cpu_count() or 1
    print_setup(console, args, cores)
    lora_bytes, nf4_bytes = sync_sizes()

    # one private loopback Ray, one learner policy, and the workers of every mode, alive for the whole benchmark:
    # the modes take turns step-run by step-run, so a change in the machine's load falls on all of them alike
    session = connect(None, num_cpus=2 * cores + 1)
    try:
        picked = MODES if args.modes == "all" else [MODES[int(i) - 1] for i in args.modes.split(",")]
        if args.pin:
            if cores < 2:
                raise SystemExit("--pin needs 2 cores")
            picked = [m for m in picked if m[1] <= 1]
        results = measure_modes(console, args, picked, cores)
        full_bytes, full_s = full_model_transfer(2, repeats=3)
    finally:
        session.close()

    console.print(sync_table(results, lora_bytes, nf4_bytes, full_bytes, full_s))
    console.print(throughput_table(results, 2 if args.pin else cores, args.rounds, args.pin))
    console.print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    console.print(machine_line())


if __name__ == "__main__":
    main()
