"""Peer benchmark: seconds per GRPO step and peak RSS of rltk and TRL's GRPOTrainer, measured side by side.

Both tools get the same work on this machine's CPU: SmolLM2-135M-Instruct (the embedded model's HF folder),
LoRA r=16 / alpha=32 on all linear layers (QLoRA: bitsandbytes NF4 with double quantization, bf16 compute),
4 prompts x 8 completions x <= 48 new tokens per step, temperature 1.0, lr 1e-5, no KL (beta 0), the
per-sequence GRPO loss, the same micro-batch (``--micro`` sequences per forward/backward), the same
arithmetic rows and the same two TRL-signature reward functions defined below, called in-process by both
(``--rltk-rewards sandbox``: rltk's default for ``file.py:fn`` rewards, worker processes). TRL runs with
``gradient_checkpointing=False`` (its default is True; rltk's is False: recomputation is not the same work) and
``bf16=False`` (fp32; ``--trl-bf16``: its default, bf16 autocast). rltk runs as configured by default on CPU
(QLoRA: loaded in 4 bits, then trained on a dense bf16 copy of the base, ``grpo.dense_base``).

Each (config, tool) run is its own process (peak RSS = ``VmHWM`` of that process, model loading included);
the runs alternate rltk / TRL (round 1: rltk-LoRA, TRL-LoRA, rltk-QLoRA, TRL-QLoRA; round 2: the same ...) so
background load hits both alike. A step's time is the wall time from the end of the previous step to the end
of this one (TRL: ``TrainerCallback.on_step_end``; rltk: its per-step metrics record); a run's figure is the
median of steps 2..n, the table's the median over runs. Completions scored per step are counted for both
(TRL: calls of the reward function; rltk: its step records) to show one step is the same work. A run that
fails (e.g. a tool that cannot do 4-bit on CPU) is reported with its error line, never a number.

    python benchmarks/bench_vs_trl.py                       # 2 rounds x 4 steps, LoRA and QLoRA
    python benchmarks/bench_vs_trl.py --rounds 1 --steps 3 --only rltk-lora trl-lora --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from machine_info import cpu_model, rss_mb  # benchmarks/ (the script's folder)
from rewards import RewardSet, RewardSpec
from rltk.cli import quiet_libraries
from rltk.core.config import from_dict
from rltk.data import DataConfig, load_dataset
from rltk.grpo import GRPOJobConfig, train
from rltk.metrics import MetricsLog
from rltk.policy import resolve_source

MODEL = "smollm2-135m"
PROMPTS, GENERATIONS, MAX_NEW_TOKENS, LR, ROWS = 4, 8, 48, 1e-5, 64
CONFIGS = {"lora": "none", "qlora": "nf4"}  # config -> quant
TOOLS = ("rltk", "trl")
RUNS = [f"{tool}-{config}" for config in CONFIGS for tool in TOOLS]  # the order of one round
ANSWER = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
REWARD_CALLS: list[int] = []  # completions per reward call (TRL calls in-process; rltk's sandbox workers do not count here)


def _text(completion) -> str:
    """A completion as text: TRL passes conversational completions as messages, rltk as strings."""
    return completion[-1]["content"] if isinstance(completion, list) else str(completion)


def format_length_reward(completions, **kwargs) -> list[float]:
    """0.5 for a final ``#### <number>`` line, minus a continuous length term (every group gets a reward spread,
    so neither tool can skip a group with equal rewards: the learner sees all 32 completions)."""
    REWARD_CALLS.append(len(completions))
    texts = [_text(c) for c in completions]
    return [(0.5 if ANSWER.search(t) else 0.0) - abs(len(t) - 40) / 80 for t in texts]


def exact_answer_reward(completions, answer, **kwargs) -> list[float]:
    """1.0 when the ``#### <number>`` answer (else the last number) equals the row's answer."""
    out = []
    for c, want in zip(completions, answer):
        text = _text(c)
        m = ANSWER.search(text)
        nums = re.findall(r"-?\d[\d,]*\.?\d*", text)
        got = m.group(1) if m else (nums[-1] if nums else "")
        out.append(1.0 if got.replace(",", "").rstrip(".") == str(want) else 0.0)
    return out


def _rows() -> list[dict]:
    return list(load_dataset(DataConfig(source="arithmetic", limit=ROWS)).rows)


def _linear4bit(model) -> int:
    """bitsandbytes ``Linear4bit`` layers left in the trained model (rltk on CPU: 0, its ``dense_base`` trains on a
    dense bf16 copy of the base dequantized once from the 4-bit load; see rltk.policy.memory.dense_frozen_base)."""
    return sum(type(m).__name__ == "Linear4bit" and type(m).__module__.startswith("bitsandbytes") for m in model.modules())


def _intervals(t0: float, ends: list[float]) -> list[float]:
    """Step wall times: from the previous step's end (the first: from the start of training) to this end."""
    return [b - a for a, b in zip([t0, *ends[:-1]], ends)]


def run_rltk(quant: str, steps: int, micro: int, sandbox: bool = False) -> dict:
    here = str(Path(__file__).resolve())
    cfg = from_dict(GRPOJobConfig, {
        "model": {"spec": MODEL, "quant": quant, "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"}},
        "data": {"source": "arithmetic", "limit": ROWS},
        "sampling": {"group_size": GENERATIONS, "max_new_tokens": MAX_NEW_TOKENS, "temperature": 1.0},
        "grpo": {"steps": steps, "prompts_per_step": PROMPTS, "lr": LR, "micro_batch_size": micro, "beta": 0.0,
                 "loss_agg": "sequence"},
        "rewards": [{"name": f"{here}:format_length_reward", "label": "format_length"},
                    {"name": f"{here}:exact_answer_reward", "label": "correct"}],
        "reward_timeout_s": 60.0,  # sandbox: a worker's first call imports this file (torch, rltk) first
        "checkpoint": {"every": 0}, "log": {"live": False, "samples_every": 0},
        "run_dir": tempfile.mkdtemp(prefix="bench-vs-trl-rltk-"),
    })
    ends: list[float] = []
    log = MetricsLog.log

    def stamped(self, record):  # the step's record is written when the step is done
        ends.append(time.perf_counter())
        return log(self, record)

    MetricsLog.log = stamped
    # in-process (as TRL calls them): the function objects, defined in __main__ here; sandbox: the file refs
    inline = None if sandbox else RewardSet([RewardSpec(format_length_reward, label="format_length"),
                                             RewardSpec(exact_answer_reward, label="correct")])
    t0 = time.perf_counter()
    result = train(cfg, reward_set=inline)
    hist = result.history
    recorded = [h["groups"] * GENERATIONS for h in hist]  # the sandbox's calls are not counted here: rltk's records
    return {"linear4bit": _linear4bit(result.policy.model), "step_s": _intervals(t0, ends),
            "own_step_s": [h["seconds/step"] for h in hist], "completions": recorded if sandbox else list(REWARD_CALLS),
            "recorded_completions": recorded, "learned": [h["sequences_learned"] for h in hist],
            "rewards": "sandbox" if sandbox else "in-process"}


def _trl_trainer(quant: str, steps: int, micro: int, bf16: bool, callback):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import GRPOConfig, GRPOTrainer

    rows = _rows()
    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": r["question"]}] for r in rows],
                              "answer": [r["answer"] for r in rows]})
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-vs-trl-trl-"), use_cpu=True, bf16=bf16, report_to=[],
        per_device_train_batch_size=micro, gradient_accumulation_steps=PROMPTS * GENERATIONS // micro,
        num_generations=GENERATIONS, max_completion_length=MAX_NEW_TOKENS, temperature=1.0, learning_rate=LR,
        beta=0.0, loss_type="grpo", max_steps=steps, logging_steps=1, save_strategy="no", disable_tqdm=True,
        gradient_checkpointing=False, lr_scheduler_type="constant", dataloader_num_workers=0, seed=0)
    assert args.generation_batch_size == PROMPTS * GENERATIONS and args.steps_per_generation * micro == PROMPTS * GENERATIONS
    quant_cfg = None if quant == "none" else BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return GRPOTrainer(model=resolve_source(MODEL), reward_funcs=[format_length_reward, exact_answer_reward],
                       args=args, train_dataset=data, peft_config=lora, quantization_config=quant_cfg,
                       callbacks=[callback])


def run_trl(quant: str, steps: int, micro: int, bf16: bool = False) -> dict:
    from transformers import TrainerCallback

    marks: dict[str, list] = {"begin": [], "end": [], "calls": []}

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            marks["begin"].append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            marks["end"].append(time.perf_counter())
            marks["calls"].append(list(REWARD_CALLS))
            REWARD_CALLS.clear()

    t_setup = time.perf_counter()
    trainer = _trl_trainer(quant, steps, micro, bf16, StepClock())
    t0 = time.perf_counter()
    trainer.train()
    return {"linear4bit": _linear4bit(trainer.model), "step_s": _intervals(t0, marks["end"]),
            "own_step_s": [e - b for b, e in zip(marks["begin"], marks["end"])],
            "completions": [sum(c) for c in marks["calls"]], "reward_calls": [len(c) for c in marks["calls"]],
            "setup_s": t0 - t_setup}


def run_one(name: str, args: argparse.Namespace) -> None:
    quiet_libraries()
    tool, config = name.split("-", 1)
    res: dict = {"name": name, "tool": tool, "config": config, "threads": torch.get_num_threads()}
    try:
        if tool == "rltk":
            res.update(run_rltk(CONFIGS[config], args.steps, args.micro, args.rltk_rewards == "sandbox"))
        else:
            res.update(run_trl(CONFIGS[config], args.steps, args.micro, args.trl_bf16))
    except Exception as e:  # reported as the row's error line, never as a number
        res["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
    res["peak_rss_mb"] = rss_mb()
    Path(args.out).write_text(json.dumps(res))


def _spawn(name: str, args: argparse.Namespace, logdir: Path) -> dict:
    out, log = logdir / f"{name}-{time.time_ns()}.json", logdir / f"{name}-{time.time_ns()}.log"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": args.omp_wait}
    cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--micro", str(args.micro),
           "--rltk-rewards", args.rltk_rewards, "--out", str(out)] + (["--trl-bf16"] if args.trl_bf16 else [])
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if out.is_file():
        res = json.loads(out.read_text())
    else:
        tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-1:] or [""]
        res = {"name": name, "tool": name.split("-")[0], "config": name.split("-", 1)[1],
               "error": f"process exited with code {rc}: {tail[0][:300]}"}
    res.update(wall_s=time.perf_counter() - t0, log=str(log))
    return res


def _median_of_runs(runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r and r.get("step_s")]
    if not ok:
        return {"error": runs[0].get("error", "no steps") if runs else "not run"}
    per_run = [statistics.median(r["step_s"][1:] or r["step_s"]) for r in ok]
    return {"s_step": statistics.median(per_run), "per_run": per_run, "rss": max(r["peak_rss_mb"] for r in ok),
            "completions": sorted({c for r in ok for c in r["completions"]}), "runs": len(ok)}


def summarize(results: list[dict]) -> list[dict]:
    rows = []
    for config in CONFIGS:
        cells = {t: _median_of_runs([r for r in results if r["name"] == f"{t}-{config}"]) for t in TOOLS
                 if any(r["name"] == f"{t}-{config}" for r in results)}
        ours, peer = cells.get("rltk", {}), cells.get("trl", {})
        both = "s_step" in ours and "s_step" in peer
        for tool, cell in cells.items():
            rows.append({"config": config, "tool": tool, **cell,
                         "ratio_s": ours["s_step"] / peer["s_step"] if both and tool == "rltk" else None,
                         "ratio_rss": ours["rss"] / peer["rss"] if both and tool == "rltk" else None})
    return rows


def print_table(rows: list[dict], header: list[str]) -> None:
    for line in header:
        print(line)
    cols = ("config", "tool", "s/step (median)", "peak RSS", "rltk/TRL s/step", "rltk/TRL RSS", "completions/step", "runs")
    widths = (7, 5, 16, 10, 16, 13, 17, 5)
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        if "error" in r:
            print(f"{r['config']:<7}  {r['tool']:<5}  not measured: {r['error']}")
            continue
        ratio = (lambda v: f"{v:.2f}x" if v is not None else "-")
        cells = (r["config"], r["tool"], f"{r['s_step']:.2f} s", f"{r['rss']:.0f} MB", ratio(r["ratio_s"]),
                 ratio(r["ratio_rss"]), ",".join(str(c) for c in r["completions"]), str(r["runs"]))
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))


def _header(args: argparse.Namespace, load_start: tuple, load_end: tuple, threads: set) -> list[str]:
    import trl

    return [f"GRPO step, rltk vs TRL {trl.__version__}: SmolLM2-135M-Instruct + LoRA r=16 all-linear, "
            f"{PROMPTS} prompts x {GENERATIONS} completions x <= {MAX_NEW_TOKENS} tokens, micro-batch {args.micro}; "
            f"median of steps 2-{args.steps} per run, median over {args.rounds} round(s)",
            f"CPU: {cpu_model()} ({os.cpu_count()} cores), torch {torch.__version__}, torch threads per run: "
            f"{','.join(map(str, sorted(threads))) or '?'}, OMP_WAIT_POLICY={args.omp_wait}; TRL bf16={args.trl_bf16}, "
            f"gradient_checkpointing=False; rltk rewards {args.rltk_rewards}",
            "load average (1/5/15 min): start " + " ".join(f"{x:.2f}" for x in load_start)
            + ", end " + " ".join(f"{x:.2f}" for x in load_end)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--micro", type=int, default=4, help="sequences per forward/backward, both tools (divides 32)")
    ap.add_argument("--only", nargs="*", choices=RUNS, help="a subset of the runs of a round")
    ap.add_argument("--json", help="write every run's measurements and the summary here")
    ap.add_argument("--omp-wait", default="PASSIVE", choices=["PASSIVE", "ACTIVE"], help="OMP_WAIT_POLICY of every run")
    ap.add_argument("--rltk-rewards", default="in-process", choices=["in-process", "sandbox"],
                    help="rltk calls the reward functions in-process as TRL does (default), or as file.py:fn refs in "
                         "its sandbox worker processes (each imports this file; their memory is not in the peak RSS)")
    ap.add_argument("--trl-bf16", action="store_true", help="TRL with bf16=True (its default; on CPU: bf16 autocast)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if (PROMPTS * GENERATIONS) % args.micro:
        ap.error(f"--micro must divide {PROMPTS * GENERATIONS}")
    if args.one:
        run_one(args.one, args)
        return
    resolve_source(MODEL)  # convert the embedded GGUF once, before any timed run
    logdir = Path(tempfile.mkdtemp(prefix="bench-vs-trl-logs-"))
    print(f"run logs: {logdir}", file=sys.stderr, flush=True)
    load_start, results = os.getloadavg(), []
    for rnd in range(1, args.rounds + 1):
        for name in [n for n in RUNS if not args.only or n in args.only]:
            print(f"round {rnd}/{args.rounds}: {name} ({args.steps} steps) ...", file=sys.stderr, flush=True)
            results.append(_spawn(name, args, logdir) | {"round": rnd})
            r = results[-1]
            print(f"  -> {r.get('error') or ' '.join(f'{s:.1f}' for s in r['step_s']) + ' s/step'}, "
                  f"peak {r.get('peak_rss_mb', float('nan')):.0f} MB, completions {r.get('completions')}",
                  file=sys.stderr, flush=True)
    header = _header(args, load_start, os.getloadavg(), {r["threads"] for r in results if "threads" in r})
    rows = summarize(results)
    print_table(rows, header)
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "summary": rows, "runs": results,
                                               "argv": sys.argv}, indent=1))


if __name__ == "__main__":
    main()
