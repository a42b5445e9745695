"""How far one GRPO step is from what this machine's cores can do: the arithmetic limit of each phase beside its
measured time, and the profile that says where the rest goes.

1. **The machine**: matmul throughput (GFLOP/s) at the shapes of SmolLM2-135M's linear layers — decode-sized
   (32 rows) and learner-sized (256 and 1024 rows) — in fp32 and bf16, and memory read bandwidth; each the best of
   ``--reps`` timings (a limit is what the machine can do; a shared machine's typical run is slower).
2. **One GRPO step of the main job's work** (SmolLM2-135M QLoRA, 4 prompts x 8, <= 48 tokens, the compute dtype
   ``RLTK_CPU_DTYPE`` or the measured choice), ``--steps`` steps, medians of steps 2..:
   - generate: lower bound = max(FLOPs / decode-sized throughput, weight bytes read per decode step / bandwidth),
     FLOPs = 2 x parameters x tokens (prefill once per prompt, then every live row per step);
   - learn: lower bound = FLOPs / learner-sized throughput, FLOPs = 4 x frozen parameters x tokens actually run
     (forward + the input gradient of every frozen layer; a group's prompt once) + 6 x LoRA parameters x tokens;
   - each phase's time as a multiple of its bound.
3. **The profile** of one step (torch.profiler): the top operators by self time.

    python benchmarks/bench_limits.py                 # 4 steps
    RLTK_CPU_DTYPE=bf16 python benchmarks/bench_limits.py --steps 2   # the other dtype
    PYTHONPATH=../old-checkout python benchmarks/bench_limits.py       # an older rltk: before / after
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from machine_info import machine_line  # benchmarks/ (the script's folder)
from main_work import main_job_work
import rltk
from rltk.cli import quiet_libraries
from rltk.grpo import GRPOJobConfig, train
from rltk.learner import Learner
from rltk.policy import compute_dtype, policy_from_config

SHAPES = [(576, 1536), (1536, 576), (576, 576), (576, 192), (576, 49152)]  # (in, out) of SmolLM2-135M's linears


def gflops(m: int, k: int, n: int, dtype: torch.dtype, reps: int) -> float:
    x, w = torch.randn(m, k).to(dtype), torch.randn(n, k).to(dtype)
    torch.nn.functional.linear(x, w)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.nn.functional.linear(x, w)
        times.append(time.perf_counter() - t0)
    return 2 * m * k * n / min(times) / 1e9  # the limit: the best this machine did, not a typical run


def machine_limits(reps: int) -> dict[str, float]:
    """GFLOP/s per (rows, dtype), the FLOP-weighted harmonic mean over :data:`SHAPES` (the model's mix of layers);
    and read bandwidth in GB/s."""
    out = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        for m in (32, 256, 1024):
            flops = [2 * m * k * n for k, n in SHAPES]
            secs = [f / (gflops(m, k, n, dtype, reps) * 1e9) for f, (k, n) in zip(flops, SHAPES)]
            out[f"{name} m={m}"] = sum(flops) / sum(secs) / 1e9
    a = torch.randn(64 << 20)
    a.sum()
    best = float("inf")
    for _ in range(max(reps, 5)):
        t0 = time.perf_counter()
        a.sum()
        best = min(best, time.perf_counter() - t0)
    out["read GB/s"] = a.numel() * 4 / best / 1e9
    return out


class Counter:
    """Wraps the learner's update to count the tokens it really runs (a group's prompt once) and the decode work."""

    def __init__(self) -> None:
        self.learn_tokens: list[int] = []
        self.completion_tokens: list[int] = []
        real = Learner.grpo_update

        def counted(learner, batch, cfg, step):
            keep = [i for i in range(len(batch)) if cfg.beta > 0 or batch.advantages[i] != 0.0]
            prompts = {tuple(batch.prompt_ids[i]) for i in keep}
            completions = sum(len(batch.completion_ids[i]) for i in keep)
            self.learn_tokens.append(sum(len(p) for p in prompts) + completions)
            self.completion_tokens.append(completions)
            return real(learner, batch, cfg, step)

        Learner.grpo_update = counted


def job_config(steps: int) -> GRPOJobConfig:
    # bench_grpo_step's length term: every group has a reward spread, the learner runs all 32 (worst case)
    length = {"name": f"{Path(__file__).resolve().parent / 'bench_grpo_step.py'}:length_shaping", "label": "length",
              "weight": 0.1}
    return main_job_work(steps, tempfile.mkdtemp(prefix="bench-limits-"), length)


def rltk_source() -> str:
    """Which rltk ran (folder and git commit), for a before/after run against an older checkout
    (``PYTHONPATH=OLD_CHECKOUT python benchmarks/bench_limits.py``)."""
    root = Path(rltk.__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{root} {sha or '(no git)'}"


def model_sizes(policy) -> dict[str, int]:
    """Weights of the frozen linear layers (``body``, the output head apart) and trainable LoRA parameters."""
    hf = policy.model.get_base_model() if hasattr(policy.model, "get_base_model") else policy.model
    head = hf.get_output_embeddings()
    linears = [m for n, m in hf.named_modules() if hasattr(m, "in_features") and hasattr(m, "out_features")
               and "lora_" not in n and m is not head and not hasattr(m, "base_layer")]
    return {"body": sum(m.in_features * m.out_features for m in linears), "head": head.in_features * head.out_features,
            "lora": sum(p.numel() for p in policy.model.parameters() if p.requires_grad)}


def run_steps(steps: int, profile: bool = False) -> tuple[list[dict], list[tuple[int, int]], dict[str, int], str, str]:
    """``steps`` GRPO steps; with ``profile``, torch.profiler's top operators of the steps (model loading excluded)."""
    quiet_libraries()
    cfg = job_config(steps)
    policy = policy_from_config(cfg.model)
    sizes = model_sizes(policy)
    counter = Counter()
    table = ""
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            result = train(cfg, policy=policy)
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=45)
    else:
        result = train(cfg, policy=policy)
    return result.history, list(zip(counter.learn_tokens, counter.completion_tokens)), sizes, str(compute_dtype(policy.device)).removeprefix("torch."), table


def bounds(h: dict, tokens: tuple[int, int], sizes: dict[str, int], lim: dict[str, float], dt: str) -> dict[str, float]:
    """Lower bounds (s) of the step's generate and learn phases from its work and the machine's limits."""
    body, (learn_tokens, completion_tokens) = sizes["body"], tokens
    sampled = h.get("sampled_tokens", h["generated_tokens"])  # an older rltk (before/after runs) has only the latter
    gen_flops = 2 * (body + sizes["head"]) * sampled
    decode_steps = 48  # the longest row sets the number of decode steps; each reads every weight once
    bytes_per_weight = 4 if dt == "float32" else 2
    gen = max(gen_flops / (lim[f"{'fp32' if dt == 'float32' else 'bf16'} m=32"] * 1e9),
              decode_steps * (body + sizes["head"]) * bytes_per_weight / (lim["read GB/s"] * 1e9))
    # the output head only where a log-prob is needed (completion tokens): forward + its input gradient
    learn_flops = 4 * body * learn_tokens + 4 * sizes["head"] * completion_tokens + 6 * sizes["lora"] * learn_tokens
    learn = learn_flops / (lim[f"{'fp32' if dt == 'float32' else 'bf16'} m=256"] * 1e9)
    return {"generate": gen, "learn": learn, "gen_tflop": gen_flops / 1e12, "learn_tflop": learn_flops / 1e12,
            "sampled": sampled}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5, help="timings per matmul shape (median)")
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    console = Console(width=160)
    lim = machine_limits(args.reps)
    t = Table(title="this machine: matmul GFLOP/s at SmolLM2-135M's linear shapes (FLOP-weighted), read bandwidth")
    for k in lim:
        t.add_column(k, justify="right")
    t.add_row(*(f"{v:.1f}" for v in lim.values()))
    console.print(t)
    history, learn_tokens, sizes, dt, _ = run_steps(args.steps)
    rows = []
    for h, lt in list(zip(history, learn_tokens))[1:] or list(zip(history, learn_tokens)):
        b = bounds(h, lt, sizes, lim, dt)
        rows.append((h["seconds/generate"], b["generate"], h["seconds/learn"], b["learn"], h["seconds/step"],
                     b["sampled"], lt[0], b["gen_tflop"], b["learn_tflop"]))
    med = [statistics.median(r[i] for r in rows) for i in range(9)]
    t = Table(title=f"one GRPO step (main job's work, compute dtype {dt}), medians of {len(rows)} steps")
    for col in ("phase", "measured s", "lower bound s", "x bound", "work"):
        t.add_column(col, justify="right")
    t.add_row("generate", f"{med[0]:.1f}", f"{med[1]:.1f}", f"{med[0] / med[1]:.1f}x", f"{med[5]:.0f} tokens, {med[7]:.2f} TFLOP")
    t.add_row("learn", f"{med[2]:.1f}", f"{med[3]:.1f}", f"{med[2] / med[3]:.1f}x", f"{med[6]:.0f} tokens run, {med[8]:.2f} TFLOP")
    t.add_row("step", f"{med[4]:.1f}", f"{med[1] + med[3]:.1f}", f"{med[4] / (med[1] + med[3]):.1f}x", "")
    console.print(t)
    console.print(machine_line())
    console.print(f"rltk: {rltk_source()}")
    console.print(f"model: {sizes['body'] / 1e6:.1f}M frozen linear weights, head {sizes['head'] / 1e6:.1f}M, "
                  f"LoRA {sizes['lora'] / 1e6:.2f}M trainable")
    if not args.no_profile:
        print("profile of 2 more steps (torch.profiler, top operators by self CPU time):")
        print(run_steps(2, profile=True)[4])


if __name__ == "__main__":
    main()
