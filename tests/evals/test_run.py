from __future__ import annotations

import json

import pytest
from scipy.stats import binomtest

import evals.run as run_mod
from evals import evaluate, load_result
from evals.generation import Completion
from evals.metrics import pass_at_k
from rltk.core.errors import UserError
from rltk.models import tiny_policy

ROWS = [{"id": f"r{i}", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(6)]


def _scripted(monkeypatch, answers):
    """Replace the model's completions with ``answers[item][sample]`` (the rest of the pipeline is real)."""

    def fake_generate(policy, prompts, settings, progress=None, stats=None):
        assert len(prompts) == len(answers)
        out = [[Completion(text, tokens=len(text), truncated=text.endswith("...")) for text in item] for item in answers]
        if stats is not None:
            stats.tokens = sum(c.tokens for item in out for c in item)
            stats.seconds = 1.0
        return out

    monkeypatch.setattr(run_mod, "generate", fake_generate)


def test_greedy_metrics_through_the_real_scorer(monkeypatch):
    # items 0, 1, 2 right (2 in the #### format), 3 wrong, 4 right by last number, 5 truncated
    _scripted(monkeypatch, [["#### 0"], ["#### 2"], ["the sum is 4"], ["#### 7"], ["8"], ["I think..."]])
    r = evaluate(tiny_policy(), "arithmetic", rows=ROWS, progress=False)
    m = r.metrics
    ci = binomtest(4, 6).proportion_ci(method="wilson")
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["accuracy_ci"] == pytest.approx([ci.low, ci.high], abs=1e-12)
    assert m["format_rate"] == pytest.approx(3 / 6)
    assert m["truncated_rate"] == pytest.approx(1 / 6)
    assert m["rewards"]["correct"]["mean"] == pytest.approx(4 / 6)
    assert m["rewards"]["format"]["mean"] == pytest.approx(3 / 6)
    assert [rec["score"] for rec in r.records] == [1, 1, 1, 0, 1, 0]
    assert [rec["samples"][0]["answer"] for rec in r.records] == ["0", "2", "4", "7", "8", None]
    assert [rec["id"] for rec in r.records] == [f"r{i}" for i in range(6)]
    assert r.records[0]["gold"] == "0" and "What is 0 + 0?" in r.records[0]["prompt"]
    assert m["timing"]["tokens_per_s"] == pytest.approx(sum(len(c[0]) for c in [["#### 0"], ["#### 2"], ["the sum is 4"], ["#### 7"], ["8"], ["I think..."]]))


def test_sampled_pass_at_k_and_maj_at_k(monkeypatch):
    answers = [
        ["#### 0", "#### 0", "#### 9", "#### 9"],  # c = 2, majority tie -> first seen "0" -> right
        ["#### 5", "#### 5", "#### 2", "#### 5"],  # c = 1, majority "5" wrong
        ["#### 1", "#### 1", "#### 1", "#### 1"],  # c = 0
        ["#### 6"] * 4,  # c = 4
    ]
    _scripted(monkeypatch, answers)
    r = evaluate(tiny_policy(), "arithmetic", rows=ROWS[:4], n_samples=4, progress=False)
    m = r.metrics
    cs = [2, 1, 0, 4]
    assert r.config["temperature"] == 1.0  # several samples default to T = 1
    assert [rec["n_correct"] for rec in r.records] == cs
    for k in (1, 2, 4):
        assert m["pass@k"][str(k)] == pytest.approx(sum(pass_at_k(4, c, k) for c in cs) / 4)
    assert m["pass@k"]["1"] == pytest.approx(m["accuracy"]) == pytest.approx(7 / 16)
    assert m["pass@k"]["4"] == pytest.approx(3 / 4)
    # maj@4: right, wrong, wrong, right
    # maj@2 chunks: [0,0] right [9,9] wrong | [5,5] wrong [2,5] tie -> "2" first, right | wrong wrong | right right
    assert m["maj@k"]["4"] == pytest.approx(2 / 4)
    assert m["maj@k"]["2"] == pytest.approx((0.5 + 0.5 + 0 + 1) / 4)
    assert [rec["score"] for rec in r.records] == [0.5, 0.25, 0.0, 1.0]


def test_k_larger_than_samples_is_a_user_error():
    with pytest.raises(UserError, match="pass@8 needs at least 8 samples"):
        evaluate(tiny_policy(), "arithmetic", rows=ROWS, n_samples=4, ks=[1, 8], progress=False)


def test_same_seed_same_numbers_on_the_tiny_model(tmp_path):
    kw = dict(limit=5, n_samples=3, temperature=1.0, max_new_tokens=6, batch_size=4, progress=False)
    a = evaluate(tiny_policy(), "arithmetic", seed=1, **kw)
    b = evaluate(tiny_policy(), "arithmetic", seed=1, **kw)
    c = evaluate(tiny_policy(), "arithmetic", seed=2, **kw)
    strip = lambda res: [[s["completion"] for s in rec["samples"]] for rec in res.records]  # noqa: E731
    assert strip(a) == strip(b) and a.metrics["pass@k"] == b.metrics["pass@k"]
    assert strip(a) != strip(c)
    path = a.save(tmp_path / "a.json")
    back = load_result(path)
    assert back.records == json.loads(json.dumps(a.records)) and back.metrics["n_items"] == 5
    assert back.config["seed"] == 1 and back.config["model"] == "tiny-random"


def test_evaluate_restores_train_mode_and_accepts_in_memory_rows():
    pol = tiny_policy()
    pol.model.train()
    r = evaluate(pol, "arithmetic", rows=ROWS[:2], max_new_tokens=3, progress=False, meta={"stage": "sft"})
    assert pol.model.training
    assert r.config["stage"] == "sft" and r.config["data"] == "in-memory rows"
    assert [rec["where"] for rec in r.records] == ["rows[0]", "rows[1]"]


def test_rows_lacking_fields_fail_before_generation(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("generation must not start")

    monkeypatch.setattr(run_mod, "generate", boom)
    with pytest.raises(UserError, match=r"rows\[1\]: row lacks field 'answer'"):
        evaluate(tiny_policy(), "arithmetic", rows=[ROWS[0], {"question": "x"}], progress=False)


def test_graded_task_reports_mean_score(monkeypatch):
    _scripted(monkeypatch, [["The provider is not liable for indirect damages."], ["ok"]])
    rows = [
        {"uid": "a", "original_text": "The provider shall not be liable for indirect damages of any kind whatsoever, ever, here.", "reference_summary": "-"},
        {"uid": "b", "original_text": "The provider shall not be liable for indirect damages of any kind whatsoever, ever, here.", "reference_summary": "-"},
    ]
    r = evaluate(tiny_policy(), "legal_summary", rows=rows, progress=False)
    assert "accuracy" not in r.metrics and "pass@k" not in r.metrics
    assert r.records[0]["score"] == pytest.approx(1.0) and r.records[1]["score"] == 0.0
    assert r.metrics["score"] == pytest.approx(0.5)
    assert r.metrics["format_rate"] == pytest.approx(0.5)


def test_classification_metrics(monkeypatch):
    _scripted(monkeypatch, [["Arbitration"], ["Other"], ["Choice of law"], ["choice of law"]])
    rows = [
        {"text": "t1", "label": "Arbitration"},
        {"text": "t2", "label": "Other"},
        {"text": "t3", "label": "Arbitration"},
        {"text": "t4", "label": "Choice of law"},
    ]
    r = evaluate(tiny_policy(), "unfair_tos", rows=rows, progress=False)
    m = r.metrics
    assert m["accuracy"] == pytest.approx(3 / 4)
    pc = m["per_class"]
    assert pc["Arbitration"]["accuracy"] == 0.5 and pc["Choice of law"]["accuracy"] == 1.0
    # F1: Arbitration p=1 r=.5 -> 2/3; Other 1; Choice of law p=.5 r=1 -> 2/3
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
