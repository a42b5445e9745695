"""Footprint and quality of the deploy formats (issue 16) for a trained adapter: fp32 merged, bf16 merged, nf4,
GGUF f16 and GGUF q8_0 (the GGUF files reloaded through transformers' GGUF loader, which dequantizes to fp32).

    python benchmarks/bench_deploy.py                           # newest runs/grpo-*/adapter, 300 arithmetic items
    python benchmarks/bench_deploy.py runs/grpo-X --n 50 --repeats 1 --keep deploy-bench

Every format is written by ``rltk.export.export`` into a temporary folder (``--keep DIR`` keeps them). Then, each in
a fresh process of its own: disk size (the folder); load time (``from_pretrained``, median of ``--repeats``); peak
RSS (VmHWM after load + the generation); tokens/s at batch 1 (greedy ``generate`` of ``--chat-prompts`` arithmetic
prompts one at a time, the chatbot case); held-out accuracy on the ``arithmetic`` eval task (``--n`` items, greedy,
``evals.evaluate``, asked with the adapter's training prompt) with a paired test against fp32 merged
(``evals.compare``: exact McNemar, 95% paired-bootstrap interval of the difference). Children run with
``RLTK_CPU_DTYPE=fp32`` (no autocast): each format computes in the dtype its weights load in.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from machine_info import machine_line  # benchmarks/ (the script's folder)
from evals import compare
from evals.result import load_result
from rltk.cli import quiet_libraries
from rltk.core.errors import UserError
from rltk.export import GGUF_FILE, export, find_source

FORMATS = [("fp32 merged", "hf", {"dtype": "fp32"}), ("bf16 merged", "hf", {"dtype": "bf16"}), ("nf4", "nf4", {}),
           ("GGUF f16", "gguf", {"gguf_type": "f16"}), ("GGUF q8_0", "gguf", {"gguf_type": "q8_0"})]

TIMING_CHILD = r"""
import json, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, gguf, n_prompts, max_new = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
extra = {"gguf_file": gguf, "dtype": torch.float32} if gguf else {}
t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(folder, **extra).eval()
load_s = time.perf_counter() - t0
tok = AutoTokenizer.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {}))
from evals.tasks import get_task
task = get_task("arithmetic")
rows = task.load(None).rows[-n_prompts:]  # the last items: not the first --n of the accuracy eval
tokens, seconds = 0, 0.0
with torch.inference_mode():
    for row in rows:
        ids = tok.apply_chat_template(task.messages(row), add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
        t1 = time.perf_counter()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        seconds += time.perf_counter() - t1
        tokens += out.shape[1] - ids.shape[1]
peak = next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"load_s": load_s, "tokens_per_s": tokens / seconds, "peak_rss_mb": peak}))
"""

EVAL_CHILD = r"""
import json, sys
from types import SimpleNamespace
import torch
from rich.console import Console
from transformers import AutoModelForCausalLM, AutoTokenizer
from evals import evaluate
from evals.commands import _prompt_for
from evals.tasks import get_task
from rltk.policy import Policy, prepare_tokenizer
folder, gguf, adapter, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
extra = {"gguf_file": gguf, "dtype": torch.float32} if gguf else {}
model = AutoModelForCausalLM.from_pretrained(folder, **extra).eval()
tok = prepare_tokenizer(AutoTokenizer.from_pretrained(folder, **({"gguf_file": gguf} if gguf else {})))
task = get_task("arithmetic")
rows = task.load(None)
task = _prompt_for(task, SimpleNamespace(system=None, adapter=adapter), rows, Console(stderr=True))
policy = Policy(model=model, tokenizer=tok, device=torch.device("cpu"), spec=folder, quant="export", source=folder)
evaluate(policy, task, rows=rows, limit=n, progress=False, meta={"format": folder}).save(out)
"""


def newest_adapter() -> str:
    found = sorted(Path("runs").glob("grpo-*/adapter/adapter_config.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise UserError("no runs/grpo-*/adapter here; give an adapter or run folder")
    return str(found[-1].parent)


def child(code: str, *argv: str, timeout: int = 7200) -> str:
    env = dict(os.environ, RLTK_CPU_DTYPE="fp32", HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               HF_HUB_DISABLE_PROGRESS_BARS="1", PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]),
                                                                             os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr[-3000:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def measure(folder: Path, gguf: str, adapter: str, args: argparse.Namespace, eval_path: Path) -> dict:
    runs = [json.loads(child(TIMING_CHILD, str(folder), gguf, str(args.chat_prompts), str(args.max_new_tokens)))
            for _ in range(args.repeats)]
    child(EVAL_CHILD, str(folder), gguf, adapter, str(args.n), str(eval_path))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"size_mb": size / 1e6, **{k: statistics.median(r[k] for r in runs) for k in runs[0]},
            "result": load_result(eval_path)}


def quality(base, other, name: str) -> tuple[str, str]:
    """Accuracy cell and the paired verdict against fp32 merged (retained, or the change with its interval)."""
    acc = f"{100 * other.metrics['accuracy']:.1f}%"
    if other is base:
        return acc, "(reference)"
    c = compare(base, other, a_name="fp32 merged", b_name=name)
    same = sum(a["samples"][0]["completion"] == b["samples"][0]["completion"] for a, b in zip(base.records, other.records))
    word = "retained" if not c.significant else ("loss" if c.diff < 0 else "gain")
    return acc, (f"{word}: {100 * c.diff:+.1f} pts [95% CI {100 * c.ci[0]:+.1f}, {100 * c.ci[1]:+.1f}], "
                 f"p={c.p_value:.3g}; identical outputs {same}/{len(base.records)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapter", nargs="?", help="adapter or run folder (default: the newest runs/grpo-*/adapter)")
    ap.add_argument("--n", type=int, default=300, help="held-out arithmetic items for accuracy")
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per format for load time, RSS, tokens/s")
    ap.add_argument("--chat-prompts", type=int, default=8, help="prompts generated one at a time for tokens/s")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--keep", metavar="DIR", help="write the exports here (kept) instead of a temporary folder")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    quiet_libraries()
    src = find_source(args.adapter or newest_adapter())
    console = Console(width=150)
    console.print(machine_line(), highlight=False)
    console.print(f"adapter {src.adapter} on {src.base_name}", highlight=False)
    with tempfile.TemporaryDirectory(prefix="rltk-bench-deploy-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        rows = {}
        for name, fmt, kw in FORMATS:
            folder = root / name.replace(" ", "-")
            console.print(f"exporting and measuring {name} ...", highlight=False)
            export(src.adapter, folder, fmt, force=True, reload=False, **kw)
            rows[name] = measure(folder, GGUF_FILE if fmt == "gguf" else "", str(src.adapter), args,
                                 Path(tmp) / f"eval-{fmt}-{len(rows)}.json")
    base = rows["fp32 merged"]["result"]
    t = Table(title=f"deploy formats: {args.n} arithmetic items greedy; timing medians of {args.repeats} fresh processes")
    for col in ("format", "disk MB", "load s", "peak RSS MB", "tok/s (batch 1)", "accuracy", "vs fp32 merged"):
        t.add_column(col, justify="left" if col in ("format", "vs fp32 merged") else "right")
    for name, r in rows.items():
        acc, verdict = quality(base, r["result"], name)
        t.add_row(name, f"{r['size_mb']:.1f}", f"{r['load_s']:.2f}", f"{r['peak_rss_mb']:.0f}",
                  f"{r['tokens_per_s']:.1f}", acc, verdict)
    console.print(t)
    console.print("GGUF rows: transformers dequantizes GGUF to fp32 on load, so their load/RSS/speed are transformers' "
                  "(not llama.cpp's); their accuracy is the quantized weights'.", highlight=False)


if __name__ == "__main__":
    main()
