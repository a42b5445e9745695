from __future__ import annotations

import json

import pytest
import torch

import evals.commands
from rltk.cli import main
from rltk.models import LoraSettings, tiny_policy

TINY = ["--model", "tiny-random", "--no-progress", "--max-new-tokens", "4"]


def _eval(tmp_path, name, *args):
    out = tmp_path / f"{name}.json"
    rc = main(["eval", *TINY, "--output", str(out), *args])
    return rc, out


def test_eval_end_to_end_on_the_tiny_model(tmp_path, capsys):
    rc, out = _eval(tmp_path, "a", "--task", "arithmetic", "--limit", "5", "--batch-size", "2", "--markdown", str(tmp_path / "a.md"))
    assert rc == 0
    screen = capsys.readouterr().out
    for word in ("accuracy", "95% CI", "wilson", "tokens/s", "format compliance", "results:"):
        assert word in screen
    data = json.loads(out.read_text())
    assert data["task"] == "arithmetic" and data["config"]["model"] == "tiny-random"
    assert data["config"]["limit"] == 5 and data["config"]["quant"] == "none"
    assert len(data["records"]) == 5
    rec = data["records"][0]
    assert {"id", "prompt", "gold", "score", "samples"} <= set(rec)
    assert {"completion", "answer", "scores", "tokens", "truncated"} <= set(rec["samples"][0])
    assert "<|im_start|>user\nWhat is 21 + 20?" in rec["prompt"]  # the chat template was applied
    assert data["metrics"]["timing"]["generated_tokens"] == sum(s["tokens"] for r in data["records"] for s in r["samples"])
    md = (tmp_path / "a.md").read_text()
    assert md.startswith("# Eval: arithmetic") and "| accuracy |" in md


def test_same_seed_same_numbers_through_the_cli(tmp_path):
    args = ["--task", "arithmetic", "--limit", "4", "--samples", "3", "--seed", "5"]
    _, a = _eval(tmp_path, "a", *args)
    _, b = _eval(tmp_path, "b", *args, "--batch-size", "5")  # batching does not change a row's samples
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert da["records"] == db["records"]
    drop = lambda m: {k: v for k, v in m.items() if k != "timing"}  # noqa: E731
    assert drop(da["metrics"]) == drop(db["metrics"])
    assert set(da["metrics"]["pass@k"]) == {"1", "2", "3"}


def test_gsm8k_and_math500_from_local_files(tmp_path, shared_data, capsys):
    rc, out = _eval(tmp_path, "g", "--task", "gsm8k", "--data", str(shared_data / "gsm8k/test.jsonl"), "--limit", "3")
    assert rc == 0 and len(json.loads(out.read_text())["records"]) == 3
    rc, out = _eval(tmp_path, "m", "--task", "math500", "--data", str(shared_data / "math500/test.jsonl"), "--limit", "2",
                    "--few-shot", "1")
    data = json.loads(out.read_text())
    assert rc == 0 and data["records"][0]["id"] == "test/precalculus/807.json"
    assert data["config"]["few_shot"] == 1 and len(data["config"]["demo_ids"]) == 1
    assert data["config"]["demo_ids"][0] not in {r["id"] for r in data["records"]}


def test_unfair_tos_prints_per_class_table(tmp_path, shared_data, capsys):
    rc, out = _eval(tmp_path, "u", "--task", "unfair_tos", "--data", str(shared_data / "legal/legalbench_unfair_tos/test.tsv"),
                    "--limit", "6", "--shuffle", "--seed", "1")
    assert rc == 0
    screen = capsys.readouterr().out
    assert "per class" in screen and "macro-F1" in screen
    data = json.loads(out.read_text())
    assert "per_class" in data["metrics"] and data["config"]["shuffle"] is True


def test_user_task_yaml_through_the_cli(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"q": "2+3", "answer": "5"}\n{"q": "1+1", "answer": "2"}\n')
    (tmp_path / "t.yaml").write_text(
        "name: mini\ndata: rows.jsonl\nprompt: 'Compute {q}.'\n"
        "rewards: [{name: math_answer, label: correct}]\ncorrect: correct\n"
    )
    rc, out = _eval(tmp_path, "y", "--task", str(tmp_path / "t.yaml"))
    data = json.loads(out.read_text())
    assert rc == 0 and data["task"] == "mini" and len(data["records"]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "gsm9k"], "unknown eval task 'gsm9k' (did you mean gsm8k?"),
        (["--task", "arithmetic", "--samples", "2", "--k", "1,4"], "pass@4 needs at least 4 samples per item, got --samples 2"),
        (["--task", "arithmetic", "--samples", "3", "--temperature", "0"], "would all be identical"),
        (["--task", "arithmetic", "--k", "x"], "--k must be comma-separated integers"),
        (["--task", "arithmetic", "--limit", "0"], "--limit must be >= 1"),
        (["--task", "arithmetic", "--task-arg", "digitz=3"], "bad option"),
        (["--task", "unfair_tos"], "task unfair_tos needs --data PATH"),
        (["--task", "gsm8k", "--data", "nope.jsonl"], "data file not found: nope.jsonl"),
        ([], "rltk eval needs --task"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("bad input must be caught before the model loads")

    monkeypatch.setattr(evals.commands, "load_policy", no_model)
    assert main(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_row_lacking_a_field_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "gsm.jsonl"
    bad.write_text('{"question": "q1", "answer": "#### 1"}\n{"question": "q2", "answer": "#### 2"}\n{"question": "q3"}\n')
    assert main(["eval", *TINY, "--task", "gsm8k", "--data", str(bad)]) == 2
    assert "gsm.jsonl:3: row lacks field 'answer' (task gsm8k needs question, answer)" in capsys.readouterr().err


def test_eval_tasks_lists_builtins(capsys):
    assert main(["eval", "tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("arithmetic", "gsm8k", "math500", "legal_summary", "unfair_tos"):
        assert name in out


def test_adapter_and_quantized_base_load_like_training(tmp_path):
    """--adapter DIR evaluates a saved peft adapter on the base; --quant nf4 quantizes the base."""
    pol = tiny_policy(lora=LoraSettings(r=4, alpha=8))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:  # fresh adapters are a no-op; make this one change the model
                p.copy_(torch.randn(p.shape, generator=g) * 2.0)
    pol.model.save_pretrained(str(tmp_path / "adapter"))
    args = ["--task", "arithmetic", "--limit", "3", "--max-new-tokens", "6"]
    assert main(["eval", "--model", "tiny-random", "--no-progress", "-o", str(tmp_path / "base.json"), *args]) == 0
    assert main(["eval", "--model", "tiny-random", "--no-progress", "-o", str(tmp_path / "lora.json"),
                 "--adapter", str(tmp_path / "adapter"), *args]) == 0
    base, lora = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("base", "lora"))
    assert lora["config"]["adapter"] == str(tmp_path / "adapter")
    texts = lambda d: [r["samples"][0]["completion"] for r in d["records"]]  # noqa: E731
    assert texts(base) != texts(lora)
    assert main(["eval", "--model", "tiny-random", "--no-progress", "-o", str(tmp_path / "q.json"), "--quant", "nf4", *args]) == 0
    q = json.loads((tmp_path / "q.json").read_text())
    assert q["config"]["quant"] == "nf4" and q["config"]["dtype"] == "nf4" and len(q["records"]) == 3


def test_quantized_eval_on_cpu_runs_the_dense_merged_copy_with_the_same_answers(tmp_path):
    """--quant nf4 --adapter on CPU evaluates a dense copy of the dequantized base + merged LoRA (the GRPO job's own
    eval path, 10-50x faster than bitsandbytes' CPU kernels): the same greedy answers as the 4-bit policy itself."""
    from evals.run import evaluate
    from evals.tasks import get_task
    from rltk.policy import load_policy

    pol = tiny_policy(lora=LoraSettings(r=4, alpha=8))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 2.0)
    pol.model.save_pretrained(str(tmp_path / "adapter"))
    args = ["--task", "arithmetic", "--limit", "4", "--max-new-tokens", "6"]
    assert main(["eval", "--model", "tiny-random", "--no-progress", "-o", str(tmp_path / "q.json"), "--quant", "nf4",
                 "--adapter", str(tmp_path / "adapter"), *args]) == 0
    got = [r["samples"][0]["completion"] for r in json.loads((tmp_path / "q.json").read_text())["records"]]
    slow = load_policy("tiny-random", quant="nf4", adapter=str(tmp_path / "adapter"), trainable=False)
    want = evaluate(slow, get_task("arithmetic"), limit=4, max_new_tokens=6, progress=False)
    assert got == [r["samples"][0]["completion"] for r in want.records]
