"""Eval generation throughput: rltk's batched decoding at batch sizes 1, 8, 32 against plain
one-at-a-time ``model.generate`` (the baseline), on the embedded SmolLM2-135M, in the same run.

    python benchmarks/bench_eval.py                      # 32 arithmetic items, greedy, 3 repeats
    python benchmarks/bench_eval.py --items 64 --reps 5 --threads 1

Both sides use the same model in the same dtype (bf16 weights, as ``rltk eval`` does on CPU;
``--dtype fp32`` for fp32 weights under bf16 autocast) and the same prompts (the ``arithmetic``
task's chat prompts, greedy, ``--max-new-tokens``). Prints items/s and tokens/s, the median over
``--reps`` runs, and each as a ratio to the baseline; and the share of items whose greedy
completion is identical to the baseline's (a sanity check: bf16 batches may differ by rounding).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from machine_info import machine_line  # benchmarks/ (the script's folder)
from evals.generation import GenerationSettings, GenerationStats, generate, render_prompts
from evals.tasks import get_task
from rltk.policy import autocast, load_policy


def baseline(policy, prompts: list[str], max_new_tokens: int) -> tuple[float, int, list[str]]:
    """One prompt at a time through ``model.generate`` (greedy, KV cache), as a user would write it."""
    tok, model = policy.tokenizer, policy.model
    texts, tokens = [], 0
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(policy.device):
        for p in prompts:
            enc = tok(p, return_tensors="pt", add_special_tokens=False).to(policy.device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
            ids = out[0, enc["input_ids"].shape[1]:]
            tokens += int(ids.numel())
            texts.append(tok.decode(ids, skip_special_tokens=True))
    return time.perf_counter() - t0, tokens, texts


def ours(policy, prompts: list[str], max_new_tokens: int, batch_size: int) -> tuple[float, int, list[str]]:
    stats = GenerationStats()
    out = generate(policy, prompts, GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size), stats=stats)
    return stats.seconds, stats.tokens, [o[0].text for o in out]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-sizes", default="1,8,32")
    ap.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"))
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    if args.threads:
        torch.set_num_threads(args.threads)
    policy = load_policy(args.model, quant="none", trainable=False)
    if args.dtype == "bf16":
        policy.model.to(torch.bfloat16)
    task = get_task("arithmetic")
    rows = task.load(None).rows[: args.items]
    prompts = render_prompts(policy, [task.messages(r) for r in rows])
    sizes = [int(x) for x in args.batch_sizes.split(",")]

    ours(policy, prompts[:4], 4, 4)  # warm-up: first-call allocations and kernel selection
    runs: dict[str, list[tuple[float, int]]] = {"baseline": []}
    runs.update({f"rltk batch {b}": [] for b in sizes})
    texts: dict[str, list[str]] = {}
    console = Console()
    for rep in range(args.reps):  # interleaved, so machine-load drift hits every variant alike
        sec, tok, txt = baseline(policy, prompts, args.max_new_tokens)
        runs["baseline"].append((sec, tok))
        texts["baseline"] = txt
        for b in sizes:
            sec, tok, txt = ours(policy, prompts, args.max_new_tokens, b)
            runs[f"rltk batch {b}"].append((sec, tok))
            texts[f"rltk batch {b}"] = txt
        console.print(f"rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {s:.1f}s" for k, v in runs.items() for s, _ in v[-1:]))

    base_ips = statistics.median(len(prompts) / s for s, _ in runs["baseline"])
    base_tps = statistics.median(t / s for s, t in runs["baseline"])
    table = Table(title=f"eval generation, {args.model} ({args.dtype}, {torch.get_num_threads()} threads), {len(prompts)} arithmetic "
                  f"items, greedy, <= {args.max_new_tokens} new tokens, median of {args.reps}")
    for col in ("method", "items/s", "tokens/s", "vs baseline", "seconds", "same text as baseline"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, v in runs.items():
        ips = statistics.median(len(prompts) / s for s, _ in v)
        tps = statistics.median(t / s for s, t in v)
        same = sum(a == b for a, b in zip(texts[name], texts["baseline"])) / len(prompts)
        table.add_row(name, f"{ips:.2f}", f"{tps:.1f}", f"{tps / base_tps:.2f}x" if name != "baseline" else "1.00x",
                      f"{statistics.median(s for s, _ in v):.1f}", f"{100 * same:.0f}%")
    console.print(table)
    console.print(machine_line())
    console.print(f"baseline: one prompt at a time through model.generate; {base_ips:.2f} items/s, {base_tps:.1f} tokens/s")


if __name__ == "__main__":
    main()
