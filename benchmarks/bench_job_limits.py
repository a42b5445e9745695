"""How far a whole job is from what this machine's cores can do: each phase of a finished ``rltk grpo`` / ``rltk demo``
run folder — its evals, the SFT warm start, GRPO's generation and learner — beside the arithmetic lower bound of the
work the run recorded, at the matmul throughput this machine reaches (measured in the same run).

    python benchmarks/bench_job_limits.py runs/demo                  # the main job's run folder
    python benchmarks/bench_job_limits.py runs/wp --reps 3

Work per phase, FLOPs at ``2 x weights`` per token forward and ``4 x`` forward + input gradient (frozen layers), ``6 x``
for the trained LoRA weights (:mod:`bench_limits`' counts):

- an eval (``evals/*.json``): its generated tokens through every weight, plus the prefill of its prompts (each prompt's
  tokens after the prefix all of them share; that prefix once), at the throughput of the eval's batch size;
- SFT (``sft/metrics.jsonl``): the tokens each step ran (``tokens_run``: shared prefixes once) forward and backward,
  the output head on completion tokens only;
- GRPO generate (``metrics.jsonl``): the tokens sampled for every group drawn (``sampled_tokens``; runs before it
  was recorded: the kept groups' tokens x drawn / kept, marked ``~``), prefill not counted, at the throughput of
  the step's rows (prompts drawn x group size);
- GRPO learn: the tokens the learner ran (``learn_tokens``, summed over mu), the head on completion tokens only, at
  the throughput of a micro-batch's tokens (runs before ``learn_tokens`` counted a group's shared prompt once —
  commit 75a4a23 — counted it per row: for them this bound errs high);
- the rest of the wall time (model loading, checkpoints, reward scoring, plots) has no bound here.

A bound is what the cores need for the arithmetic alone at the best throughput measured for that shape; a phase at
1x would waste nothing. Read the table as "the job cannot take less than this on this machine", not as a target.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench_limits import machine_limits, model_sizes  # benchmarks/ (the script's folder)
from machine_info import machine_line
from rltk.cli import quiet_libraries
from rltk.grpo import load_job_config
from rltk.policy import compute_dtype, policy_from_config
from rltk.policy.decode import shared_prefix


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def rate(lim: dict[str, float], dt: str, rows: int) -> float:
    """FLOP/s at a matmul of ``rows`` rows: the throughput measured at the next row count up (32, 256, 1024), so
    the bound errs low (a GEMM does not get slower with more rows at these sizes)."""
    name = "fp32" if dt == "float32" else "bf16"
    m = min((m for m in (32, 256, 1024) if m >= rows), default=1024)
    return lim[f"{name} m={m}"] * 1e9


def eval_rows(run: Path, tokenizer, sizes: dict[str, int], lim: dict[str, float], dt: str) -> list[tuple]:
    """(phase, measured s, bound s, work) per eval of the run."""
    full = sizes["body"] + sizes["head"]
    out = []
    for path in sorted((run / "evals").glob("*.json")):
        ev = json.loads(path.read_text())
        timing = ev["metrics"]["timing"]
        prompts = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in ev["records"]]
        p = shared_prefix(prompts) if len(prompts) > 1 else 0
        prefill = p + sum(len(x) - p for x in prompts)
        flops = 2 * full * timing["generated_tokens"] + 2 * sizes["body"] * prefill
        out.append((f"eval {path.stem}", timing["wall_seconds"], flops / rate(lim, dt, ev["config"]["batch_size"]),
                    f"{timing['generated_tokens']:,} tokens generated, {prefill:,} prefilled"))
    return out


def learn_flops(sizes: dict[str, int], tokens: float, completion_tokens: float) -> float:
    return 4 * sizes["body"] * tokens + 4 * sizes["head"] * completion_tokens + 6 * sizes["lora"] * tokens


def sft_rows(run: Path, sizes: dict[str, int], lim: dict[str, float], dt: str) -> list[tuple]:
    steps = read_jsonl(run / "sft" / "metrics.jsonl")
    if not steps:
        return []
    exact = all("tokens_run" in s for s in steps)
    tokens = sum(s["tokens_run"] if exact else s["tokens"] for s in steps)
    comp = sum(s["completion_tokens"] for s in steps)
    bound = learn_flops(sizes, tokens, comp) / rate(lim, dt, 1024)
    work = f"{len(steps)} steps, {'' if exact else '<= '}{tokens:,} tokens run"
    return [("SFT", sum(s["seconds/step"] for s in steps), bound, work)]


def _sampled(step: dict) -> float:
    """Tokens a step generated: every drawn group's, or for a run before they were recorded, the kept groups'
    scaled by drawn / kept."""
    if "sampled_tokens" in step:
        return step["sampled_tokens"]
    return step["generated_tokens"] * step["prompts_drawn"] / max(step["groups"], 1)


def grpo_rows(steps: list[dict], group: int, micro: int, sizes: dict[str, int], lim: dict[str, float], dt: str
              ) -> list[tuple]:
    """GRPO's two phases; each step's decode at its rows' throughput (prompts drawn x group), its learner at a
    micro-batch's tokens' (``micro`` sequences)."""
    if not steps:
        return []
    full = sizes["body"] + sizes["head"]
    gen = sum(2 * full * _sampled(s) / rate(lim, dt, s["prompts_drawn"] * group) for s in steps)
    learn = 0.0
    for s in steps:
        micro_batches = max(1, -(-s["sequences_learned"] // micro)) * max(s["optimizer_steps"], 1)
        comp = (s["completion_len"] or 0) * s["sequences_learned"] * s["optimizer_steps"]
        learn += learn_flops(sizes, s["learn_tokens"], comp) / rate(lim, dt, s["learn_tokens"] // micro_batches)
    mark = "" if all("sampled_tokens" in s for s in steps) else "~"
    return [("GRPO generate", sum(s["seconds/generate"] for s in steps), gen,
             f"{len(steps)} steps, {mark}{sum(_sampled(s) for s in steps):,.0f} tokens sampled"),
            ("GRPO learn", sum(s["seconds/learn"] for s in steps), learn,
             f"{sum(s['learn_tokens'] for s in steps):,} tokens run")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a finished run folder of `rltk grpo` / `rltk demo` (config.yaml, summary.json, evals/)")
    ap.add_argument("--reps", type=int, default=10, help="timings per matmul shape and round (the best is the limit)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the machine's measurement, spread over the run "
                    "(a shared VM's throughput drifts by 1.5x within minutes: the best of them is its limit)")
    ap.add_argument("--pause", type=float, default=20.0, help="seconds between rounds")
    args = ap.parse_args()
    run = Path(args.run)
    if not (run / "config.yaml").is_file() or not (run / "summary.json").is_file():
        ap.error(f"{run} is not a finished run folder (config.yaml and summary.json)")
    quiet_libraries()
    summary = json.loads((run / "summary.json").read_text())
    cfg = load_job_config(run / "config.yaml")
    policy = policy_from_config(cfg.model)
    sizes, dt = model_sizes(policy), str(compute_dtype(policy.device)).removeprefix("torch.")
    rounds = []
    for i in range(max(args.rounds, 1)):
        if i:
            time.sleep(args.pause)
        rounds.append(machine_limits(args.reps))
    lim = {k: max(r[k] for r in rounds) for k in rounds[0]}
    rows = (eval_rows(run, policy.tokenizer, sizes, lim, dt) + sft_rows(run, sizes, lim, dt)
            + grpo_rows(read_jsonl(run / "metrics.jsonl"), cfg.sampling.group_size,
                                                cfg.grpo.micro_batch_size, sizes, lim, dt))
    wall = summary["wall_seconds"]
    rows.append(("rest (loading, checkpoints, rewards, plots)", wall - sum(r[1] for r in rows), 0.0, ""))
    t = Table(title=f"{run}: each phase beside its arithmetic lower bound (compute dtype {dt})")
    for col in ("phase", "measured min", "lower bound min", "x bound", "work"):
        t.add_column(col, justify="right" if col != "work" else "left")
    for name, measured, bound, work in rows:
        t.add_row(name, f"{measured / 60:.2f}", f"{bound / 60:.2f}", f"{measured / bound:.1f}x" if bound else "–", work)
    total = sum(r[2] for r in rows)
    t.add_row("whole job", f"{wall / 60:.2f}", f"{total / 60:.2f}", f"{wall / total:.1f}x", "wall time (summary.json)")
    console = Console(width=180)
    console.print(t)
    console.print(f"this machine, GFLOP/s at SmolLM2-135M's linear shapes (best of {len(rounds)} rounds x {args.reps}; "
                  "the rounds' range in brackets): " + ", ".join(
                      f"{k} {v:.0f} [{min(r[k] for r in rounds):.0f}-{v:.0f}]" for k, v in lim.items()))
    console.print(f"the run's machine: {summary.get('machine')}")
    console.print(machine_line())


if __name__ == "__main__":
    main()
