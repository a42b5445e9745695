"""Issue 15: legal summaries, split by document, scored by the legal metrics (every sample, every eval) and
compared pairwise; the composed legal reward ranks every hack below an honest summary."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest

import evals.run as run_mod
from evals import evaluate, get_task
from evals.generation import Completion
from evals.task_metrics import compare_task_metrics
from rewards import get_reward
from rltk.core.errors import UserError
from rltk.core.rows import Rows
from rltk.core.splits import check_disjoint, group_key, split_by_group
from rltk.models import tiny_policy

SRC = ("the provider shall not be liable for any indirect damages arising from your use of the service and you "
       "agree to indemnify the provider against all third party claims related to your content")
REF = "the provider is not responsible for indirect losses and you must cover its costs if your content gets it sued."
HONEST = "The provider is not liable for indirect damages, and you must indemnify it against claims about your content."
ROWS = [{"uid": f"u{i}", "doc": f"d{i}", "urls": "", "original_text": SRC, "reference_summary": REF} for i in range(3)]


def _scripted(monkeypatch, answers):
    def fake_generate(policy, prompts, settings, progress=None, stats=None):
        assert len(prompts) == len(answers)
        out = [[Completion(t, tokens=len(t.split()), truncated=False) for t in item] for item in answers]
        if stats is not None:
            stats.tokens, stats.seconds = sum(c.tokens for item in out for c in item), 1.0
        return out

    monkeypatch.setattr(run_mod, "generate", fake_generate)


def test_every_sample_gets_the_legal_metrics_and_the_run_their_means_with_intervals(monkeypatch):
    lay = "The provider is not responsible for indirect losses and you must pay it back for claims."
    _scripted(monkeypatch, [[HONEST], [lay], [SRC]])
    r = evaluate(tiny_policy(), "legal_summary", rows=ROWS, progress=False)
    m = [s["metrics"] for rec in r.records for s in rec["samples"]]
    assert m[0]["term_coverage"] == 1.0 and m[0]["lay_rate"] == 0.0 and m[0]["copy_rate"] == 0.0
    assert m[1]["lay_rate"] > 0 and m[1]["term_coverage"] < 1.0
    assert m[2]["copy_rate"] == 1.0 and m[2]["compression"] == 1.0
    assert m[1]["rouge_l"] > m[0]["rouge_l"]  # the lay summary is worded like the human one
    tm = r.metrics["task_metrics"]
    assert set(tm) == {"legal_terms", "term_coverage", "lay_rate", "contradiction_rate", "rouge_l", "compression", "copy_rate"}
    assert tm["copy_rate"]["mean"] == pytest.approx(1 / 3) and tm["copy_rate"]["n_items"] == 3
    lo, hi = tm["copy_rate"]["ci"]
    assert 0 <= lo < 1 / 3 < hi <= 1


def test_compare_pairs_the_runs_on_every_legal_metric(monkeypatch, tmp_path):
    rows = [dict(ROWS[0], uid=f"u{i}", doc=f"d{i}") for i in range(12)]
    lay = "The provider is not responsible for indirect losses and you must pay it back for claims."
    _scripted(monkeypatch, [[lay]] * 12)
    a = evaluate(tiny_policy(), "legal_summary", rows=rows, progress=False)
    _scripted(monkeypatch, [[HONEST]] * 12)
    b = evaluate(tiny_policy(), "legal_summary", rows=rows, progress=False)
    by = {c.metric: c for c in compare_task_metrics(a, b, a_name="SFT", b_name="GRPO")}
    assert by["precise-term coverage"].p_value < 0.05 and by["precise-term coverage"].diff > 0
    assert by["lay-variant rate"].lower_is_better and by["lay-variant rate"].diff < 0
    assert "better" in by["lay-variant rate"].verdict  # fewer lay variants is the better direction
    a.save(tmp_path / "a.json")
    b.save(tmp_path / "b.json")
    out = subprocess.run([sys.executable, "-m", "rltk", "eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                          "--output", str(tmp_path / "c.json")], capture_output=True, text=True, check=True)
    assert "precise-term coverage:" in out.stdout and "ROUGE-L F1:" in out.stdout
    assert {x["metric"] for x in json.loads((tmp_path / "c.json").read_text())["task_metrics"]} >= {"copy rate", "ROUGE-L F1"}


def test_the_split_is_by_document_never_by_row(shared_data):
    path = str(shared_data / "legal/plain_english_contracts/all_v1.json")
    train, test = (get_task("legal_summary", split=s).load(path) for s in ("train", "test"))
    everything = get_task("legal_summary").load(path)
    assert len(train) + len(test) == len(everything) == 337
    docs = [{group_key(r, ["urls", "doc"]) for r in x.rows} for x in (train, test)]
    assert not docs[0] & docs[1] and len(docs[1]) >= 20
    assert 0.1 < len(test) / len(everything) < 0.35
    again = get_task("legal_summary", split="test").load(path)
    assert [r["uid"] for r in again.rows] == [r["uid"] for r in test.rows]  # by hash of the document: stable


def test_split_errors_name_the_problem():
    rows = Rows([{"doc": "a"}, {"doc": "b"}], ["f:1", "f:2"], "f")
    with pytest.raises(UserError, match="split_by columns"):
        split_by_group(rows, ["nope"], "train")
    with pytest.raises(UserError, match="split must be one of"):
        split_by_group(rows, ["doc"], "dev")
    with pytest.raises(UserError, match="group 'x' is in both train and test"):
        check_disjoint(["x", "y"], ["x"], ["doc"])
    with pytest.raises(UserError, match="split must be all, train or test"):
        get_task("legal_summary", split="validation")


@pytest.mark.parametrize("attack", ["source pasted", "terms stuffed", "empty", "negation flipped", "lay words"])
def test_the_composed_legal_reward_ranks_each_hack_below_an_honest_summary(attack):
    hacks = {
        "source pasted": SRC,
        "terms stuffed": "liable, indirect damages, indemnify, third party, claims.",
        "empty": "",
        "negation flipped": HONEST.replace("is not liable", "is liable"),
        "lay words": "The provider is not responsible for indirect losses, and you must pay it back for claims.",
    }
    reward = get_reward("legal_summary")
    honest, hacked = reward([HONEST, hacks[attack]], original_text=[SRC, SRC])
    assert honest >= 0.9 and hacked < honest - 0.3, (attack, honest, hacked)


def test_legal_side_by_side_prints_source_human_and_each_stage(tmp_path):
    """examples/legal/side_by_side.py reads a run's three greedy evals and prints held-out items side by side."""
    repo = Path(__file__).resolve().parents[2]
    data = repo / "examples" / "legal" / "data" / "all_v1.json"
    task = get_task("legal_summary", split="test", test_fraction=0.3, max_source_words=160)
    policy = tiny_policy()
    (tmp_path / "evals").mkdir()
    for stage in ("base", "sft", "grpo"):
        evaluate(policy, task, data=str(data), limit=4, max_new_tokens=6, progress=False).save(
            tmp_path / "evals" / f"{stage}_greedy.json")
    script = repo / "examples" / "legal" / "side_by_side.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path), "--n", "3", "--markdown", str(tmp_path / "x.md")],
                         capture_output=True, text=True, cwd=repo, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("**Human summary.**") == 3 and out.stdout.count("**GRPO** (score ") == 3
    assert (tmp_path / "x.md").read_text().strip() == out.stdout.strip()
    source = out.stdout.split("**Source.** ", 1)[1].split("\n", 1)[0]
    assert len(source) > 20 and "<|im" not in source  # the passage, out of the chat prompt
    (tmp_path / "evals" / "grpo_greedy.json").unlink()
    missing = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, cwd=repo)
    assert missing.returncode == 2 and "grpo_greedy.json" in missing.stderr
