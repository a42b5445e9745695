"""rltk's gsm8k eval against lm-evaluation-harness (issue 16) on the same model, the same GSM8K items, the same
prompt: an adapter exported by ``rltk export --format hf`` (fp32) and the same adapter on its base (lm-eval's
``peft=``), each evaluated greedy by ``lm_eval.simple_evaluate`` (strict-match: ``#### <number>``) and by
``evals.evaluate`` (task ``gsm8k``), with accuracy, 95% intervals and a paired test per model.

    pip install lm-eval        # an optional extra (pip install -e ".[lmeval]"), never a dependency of rltk
    python benchmarks/bench_lm_eval.py runs/grpo-X/adapter --n 100
    python benchmarks/bench_lm_eval.py --n 20 --max-new-tokens 128           # newest runs/grpo-*/adapter

lm-eval reads the local file through a task YAML this script writes (``dataset_path: json``, the file in
``data_files``), asks with the model's chat template and the system prompt the adapter was trained with (its
``rltk_prompt.json``; else the gsm8k task's), which rltk uses as well, so both tools send the same tokens.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_deploy import newest_adapter  # benchmarks/ (the script's folder)
from machine_info import machine_line
from evals import evaluate
from evals import mcnemar_exact, wilson_interval
from evals.tasks import get_task
from rltk.cli import quiet_libraries
from rltk.export import export, find_source
from rltk.policy import load_policy, read_prompt, resolve_source, spec_for_base

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
TASK_NAME = "rltk_gsm8k_local"

TASK_YAML = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer.split('####')[-1].strip()}}}}"
generation_kwargs:
  until: ["<|im_end|>", "<|endoftext|>"]
  do_sample: false
  max_gen_toks: {max_new}
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "#### (\\\\-?[0-9\\\\.\\\\,]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
num_fewshot: 0
metadata:
  version: 1.0
"""


def run_lm_eval(model_args: str, task_dir: Path, n: int, system: str, batch_size: int) -> tuple[list[tuple[bool, str]], float]:
    """Per item (by doc_id): strict-match correctness and the generated text; the wall time of simple_evaluate."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    t0 = time.perf_counter()
    out = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=[TASK_NAME],
                                  task_manager=TaskManager(include_path=str(task_dir)), limit=n,
                                  batch_size=batch_size, apply_chat_template=True, system_instruction=system,
                                  log_samples=True, device="cpu", random_seed=0, numpy_random_seed=0,
                                  torch_random_seed=0, bootstrap_iters=0)
    seconds = time.perf_counter() - t0
    by_doc: dict[int, tuple[bool, str]] = {}
    for s in out["samples"][TASK_NAME]:
        if s.get("filter", "strict-match") == "strict-match":
            by_doc[int(s["doc_id"])] = (bool(s["exact_match"]), str(s["resps"][0][0]))
    return [by_doc[i] for i in sorted(by_doc)], seconds


def run_rltk(policy: Any, n: int, system: str, max_new: int) -> tuple[list[tuple[bool, str]], float]:
    task = get_task("gsm8k")
    task = dataclasses.replace(task, system=system)
    t0 = time.perf_counter()
    res = evaluate(policy, task, data=str(GSM8K), limit=n, max_new_tokens=max_new, progress=False)
    return [(bool(r["n_correct"]), r["samples"][0]["completion"]) for r in res.records], time.perf_counter() - t0


def cell(correct: list[bool]) -> str:
    k, n = sum(correct), len(correct)
    lo, hi = wilson_interval(k, n)
    return f"{100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def table_row(name: str, ours_out: list[tuple[bool, str]], lm_out: list[tuple[bool, str]], ours_s: float,
              lm_s: float) -> tuple[str, ...]:
    ours, lm = [x for x, _ in ours_out], [x for x, _ in lm_out]
    same_text = sum(a.strip() == b.strip() for (_, a), (_, b) in zip(ours_out, lm_out))
    b = sum(x and not y for x, y in zip(ours, lm))
    c = sum(y and not x for x, y in zip(ours, lm))
    (lo1, hi1), (lo2, hi2) = wilson_interval(sum(ours), len(ours)), wilson_interval(sum(lm), len(lm))
    overlap = max(lo1, lo2) <= min(hi1, hi2)
    return (name, cell(ours), cell(lm), f"{same_text}/{len(ours)}", f"{sum(x == y for x, y in zip(ours, lm))}/{len(ours)}", f"{b} / {c}",
            f"{mcnemar_exact(b, c):.3g}", "yes" if overlap else "NO", f"{ours_s:.0f} / {lm_s:.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("adapter", nargs="?", help="adapter or run folder (default: the newest runs/grpo-*/adapter)")
    ap.add_argument("--n", type=int, default=100, help="GSM8K test items (the file's first N)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16, help="lm-eval's batch size (rltk batches on its own)")
    args = ap.parse_args()
    if not GSM8K.is_file():
        raise SystemExit(f"needs {GSM8K} (the shared GSM8K test file)")
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise SystemExit("needs lm-eval: pip install lm-eval (an optional extra: pip install -e '.[lmeval]')")
    from rich.console import Console
    from rich.table import Table

    quiet_libraries()
    console = Console(width=170)
    src = find_source(args.adapter or newest_adapter())
    prompt = read_prompt(src.adapter) or {}
    system = prompt.get("system_prompt") or get_task("gsm8k").system
    base_spec = spec_for_base(src.base_name)
    base_folder = resolve_source(base_spec)  # the embedded model's HF folder (lm-eval loads folders and hub ids)
    console.print(machine_line(), highlight=False)
    console.print(f"adapter {src.adapter} on {src.base_name}; {args.n} GSM8K test items, greedy, "
                  f"{args.max_new_tokens} new tokens; system prompt: {system!r}", highlight=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="rltk-bench-lm-eval-") as tmp:
        task_dir = Path(tmp) / "tasks"
        task_dir.mkdir()
        (task_dir / f"{TASK_NAME}.yaml").write_text(TASK_YAML.format(name=TASK_NAME, data=json.dumps(str(GSM8K)),
                                                                    max_new=args.max_new_tokens))
        folder = Path(tmp) / "hf"
        export(src.adapter, folder, "hf", dtype="fp32", reload=False)
        models = [("exported hf folder (fp32)", f"pretrained={folder},dtype=float32",
                   lambda: load_policy(str(folder), quant="none", trainable=False)),
                  ("adapter on its base (peft=)", f"pretrained={base_folder},peft={src.adapter},dtype=float32",
                   lambda: load_policy(base_spec, quant="none", adapter=str(src.adapter), trainable=False))]
        for name, model_args, load in models:
            console.print(f"{name}: lm-eval ...", highlight=False)
            lm, lm_s = run_lm_eval(model_args, task_dir, args.n, system, args.batch_size)
            console.print(f"{name}: rltk ...", highlight=False)
            ours, ours_s = run_rltk(load(), args.n, system, args.max_new_tokens)
            if len(lm) != len(ours):
                raise SystemExit(f"{name}: lm-eval scored {len(lm)} items, rltk {len(ours)}")
            rows.append(table_row(name, ours, lm, ours_s, lm_s))
    t = Table(title=f"rltk gsm8k vs lm-eval strict-match, same {args.n} items and prompt")
    for col in ("model", "rltk accuracy [95% CI]", "lm-eval strict-match [95% CI]", "same text", "same verdict",
                "only rltk / only lm-eval right", "McNemar p", "CIs overlap", "wall s rltk / lm-eval"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        t.add_row(*r)
    console.print(t)
    console.print("rltk scores the answer after '####' with its math verifier; lm-eval's strict-match takes the first "
                  "'#### <number>' and compares strings after stripping ',', '$' and a final '.'.", highlight=False)


if __name__ == "__main__":
    main()
