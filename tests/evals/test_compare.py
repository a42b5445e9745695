from __future__ import annotations

import json

import pytest
from scipy.stats import binomtest, wilcoxon

import evals.run as run_mod
from evals import compare, evaluate, load_result
from evals.generation import Completion
from rltk.cli import main
from rltk.core.errors import UserError
from rltk.models import tiny_policy

N = 40
ROWS = [{"id": f"q{i:02d}", "question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(N)]


def _run(monkeypatch, right: set[int], path, n_samples=1, rows=ROWS, right_samples=None):
    """An eval result where exactly the items in ``right`` are answered correctly."""

    def fake_generate(policy, prompts, settings, progress=None, stats=None):
        out = []
        for i in range(len(prompts)):
            gold = int(rows[i]["answer"])
            k = right_samples(i) if right_samples else (settings.n_samples if i in right else 0)
            texts = [f"#### {gold}"] * k + [f"#### {gold + 1}"] * (settings.n_samples - k)
            out.append([Completion(t, 3, False) for t in texts])
        return out

    monkeypatch.setattr(run_mod, "generate", fake_generate)
    r = evaluate(tiny_policy(), "arithmetic", rows=rows, n_samples=n_samples, progress=False)
    r.save(path)
    return r


def test_compare_counts_flips_and_gives_the_exact_mcnemar_p(monkeypatch, tmp_path):
    a_right = set(range(0, 20))  # A: 20 / 40
    b_right = set(range(3, 33))  # B: 30 / 40; improved 20..32 (13), regressed 0..2 (3)
    a = _run(monkeypatch, a_right, tmp_path / "a.json")
    b = _run(monkeypatch, b_right, tmp_path / "b.json")
    c = compare(a, b)
    assert c.improved == [f"q{i:02d}" for i in range(20, 33)]
    assert c.regressed == ["q00", "q01", "q02"]
    assert c.test == "exact McNemar"
    assert c.p_value == pytest.approx(binomtest(3, 16, 0.5).pvalue, rel=1e-12)  # = 0.0213
    assert c.diff == pytest.approx(0.25) and c.significant
    assert c.verdict.startswith("B better than A: +25.0 points (75.0% vs 50.0%), p = 0.0213")
    # swapping the runs mirrors the result
    r = compare(b, a)
    assert r.verdict.startswith("B worse than A: -25.0 points") and r.p_value == pytest.approx(c.p_value)


def test_cli_compare_prints_verdict_and_writes_reports(monkeypatch, tmp_path, capsys):
    _run(monkeypatch, set(range(0, 20)), tmp_path / "a.json")
    _run(monkeypatch, set(range(1, 21)), tmp_path / "b.json")  # 1 vs 1 flips: no difference
    rc = main(["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
               "--markdown", str(tmp_path / "c.md"), "--output", str(tmp_path / "c.json")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "no significant difference: B - A = +0.0 points (50.0% vs 50.0%), p = 1" in out
    assert "1 improved, 1 regressed" in out
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["improved"] == ["q20"] and data["regressed"] == ["q00"] and data["p_value"] == 1.0
    assert "## Improved (B > A): 1" in (tmp_path / "c.md").read_text()


def test_sampled_runs_use_the_paired_bootstrap_on_per_item_pass1(monkeypatch, tmp_path):
    a = _run(monkeypatch, set(), tmp_path / "a.json", n_samples=4, right_samples=lambda i: i % 3)  # 0, 1, 2 of 4
    b = _run(monkeypatch, set(), tmp_path / "b.json", n_samples=4, right_samples=lambda i: min(4, i % 3 + 1))
    c = compare(a, b, n_resamples=2000)
    assert c.test == "paired bootstrap" and c.metric == "pass@1 (4 samples)"
    assert c.diff == pytest.approx(0.25)  # every item gains one correct sample of four
    assert len(c.improved) == N and not c.regressed
    assert c.p_value == pytest.approx(1 / 2001) and c.ci == (pytest.approx(0.25), pytest.approx(0.25))
    assert "p <= 5.0e-04" in c.verdict  # the bootstrap's floor is reported as a bound, not as the p
    assert c.to_dict()["p_at_floor"] and c.p_wilcoxon == pytest.approx(wilcoxon([0.25] * N).pvalue)
    assert f"Wilcoxon signed-rank p = {c.p_wilcoxon:.2g}" in c.verdict


def test_refuses_different_items_tasks_and_content(monkeypatch, tmp_path):
    a = _run(monkeypatch, set(range(10)), tmp_path / "a.json")
    fewer = _run(monkeypatch, set(range(10)), tmp_path / "fewer.json", rows=ROWS[:30])
    with pytest.raises(UserError, match=r"different items: 10 only in .*a.json, 0 only in .*fewer.json"):
        compare(a, fewer)
    changed = [dict(r) for r in ROWS]
    changed[5]["question"] = "What is 5 + 2?"
    other = _run(monkeypatch, set(range(10)), tmp_path / "changed.json", rows=changed)
    with pytest.raises(UserError, match=r"item 'q05' has different content"):
        compare(a, other)
    data = json.loads((tmp_path / "a.json").read_text())
    data["task"] = "gsm8k"
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match="different tasks"):
        compare(a, load_result(tmp_path / "g.json"))


def test_cli_compare_bad_files_exit_2(monkeypatch, tmp_path, capsys):
    _run(monkeypatch, set(range(10)), tmp_path / "a.json")
    _run(monkeypatch, set(range(10)), tmp_path / "fewer.json", rows=ROWS[:30])
    assert main(["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "fewer.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot compare runs on different items" in err
    (tmp_path / "x.json").write_text('{"hello": 1}')
    assert main(["eval", "compare", str(tmp_path / "a.json"), str(tmp_path / "x.json")]) == 2
    assert "not an rltk eval result" in capsys.readouterr().err
