"""``rltk reward score | test | audit`` driven through rltk.cli.main, asserting exit codes and files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rltk.cli import main

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"prompt": "2+2?", "completion": r"2+2 = \boxed{4}", "answer": "4"},
    {"prompt": "half?", "completion": "it is 0.5", "answer": r"\frac{1}{2}"},
    {"prompt": "tower", "completion": r"\boxed{9^{9^{9^9}}}", "answer": "3"},
    {"prompt": "chat", "completion": [{"role": "assistant", "content": r"\boxed{7}"}], "answer": "7"},
    {"prompt": "no gold", "completion": r"\boxed{1}", "answer": None},
]


def test_score_writes_total_and_components(tmp_path, capsys):
    inp = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "out" / "scored.jsonl"
    code = main(["reward", "score", "--reward", "math_answer", "--reward", "format_answer",
                 "--param", "format_answer.style=boxed", "--input", str(inp), "--output", str(out)])
    assert code == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rewards"]["math_answer"] for r in scored] == [1.0, 1.0, 0.0, 1.0, None]
    assert [r["rewards"]["format_answer"] for r in scored] == [1.0, 0.0, 1.0, 1.0, 1.0]
    assert [r["reward"] for r in scored] == [2.0, 1.0, 1.0, 2.0, 1.0]
    assert scored[0]["prompt"] == "2+2?" and scored[3]["completion"] == ROWS[3]["completion"]
    text = capsys.readouterr().out
    assert "math_answer" in text and "ms / row" in text and "20.0%" in text  # share of None


def test_score_from_rewards_yaml_with_gate(tmp_path):
    cfg = tmp_path / "rewards.yaml"
    cfg.write_text("rewards:\n  - {name: format_answer, label: fmt, weight: 0.5, params: {style: boxed}}\n"
                   "  - {name: math_answer, gate: fmt}\n")
    inp = write_jsonl(tmp_path / "rows.jsonl", ROWS[:2])
    out = tmp_path / "scored.jsonl"
    assert main(["reward", "score", "--rewards", str(cfg), "--input", str(inp), "--output", str(out)]) == 0
    assert [json.loads(line)["reward"] for line in out.read_text().splitlines()] == [1.5, 0.0]


def test_malformed_jsonl_names_file_and_line(tmp_path, capsys):
    inp = tmp_path / "rows.jsonl"
    inp.write_text(json.dumps(ROWS[0]) + "\n\n" + '{"completion": "x", "answer": \n')
    out = tmp_path / "scored.jsonl"
    assert main(["reward", "score", "--reward", "math_answer", "--input", str(inp), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{inp}:3: invalid JSON" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_column_fails_before_scoring(tmp_path, capsys):
    inp = write_jsonl(tmp_path / "rows.jsonl", [{"completion": "#### 3", "solution": "3"}])
    out = tmp_path / "scored.jsonl"
    assert main(["reward", "score", "--reward", "math_answer", "--input", str(inp), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "reward 'math_answer' needs column 'answer'" in err and str(inp) in err
    assert not out.exists()
    # the same rows work once the gold column is named
    assert main(["reward", "score", "--reward", "math_answer", "--param", "math_answer.gold_column=solution",
                 "--input", str(inp), "--output", str(out)]) == 0


def test_missing_completion_and_bad_param(tmp_path, capsys):
    inp = write_jsonl(tmp_path / "rows.jsonl", [{"completion": "a", "answer": "1"}, {"answer": "1"}])
    assert main(["reward", "score", "--reward", "math_answer", "--input", str(inp), "--output", str(tmp_path / "o")]) == 2
    assert f"{inp}:2: row has no 'completion' column" in capsys.readouterr().err
    assert main(["reward", "score", "--reward", "math_answer", "--param", "fmt.style=boxed",
                 "--input", str(inp), "--output", str(tmp_path / "o")]) == 2
    assert "no reward labelled 'fmt'" in capsys.readouterr().err


def test_reward_test_passes_and_fails(tmp_path, capsys):
    ok = main(["reward", "test", "--reward", f"{HERE / 'readme_example.py'}:hashes_answer", "--cases", str(HERE / "readme_cases.jsonl")])
    text = capsys.readouterr().out
    assert ok == 0 and "FAIL" not in text and "0.0% (0/3)" in text
    cases = write_jsonl(tmp_path / "cases.jsonl", [
        {"completion": r"\boxed{4}", "answer": "4", "expected": 1.0},
        {"completion": r"\boxed{5}", "answer": "4", "expected": 1.0},  # mislabelled: a false negative
        {"completion": "4 and then 5", "answer": "5", "expected": 0.0},  # last number: a false positive
        {"completion": "x", "answer": None, "expected": None},
    ])
    assert main(["reward", "test", "--reward", "math_answer", "--cases", str(cases)]) == 1
    text = capsys.readouterr().out
    assert text.count("FAIL") == 2
    assert re.search(r"false-positive rate.*100\.0% \(1/1\)", text) and re.search(r"false-negative rate.*50\.0% \(1/2\)", text)


def test_reward_test_needs_expected(tmp_path, capsys):
    cases = write_jsonl(tmp_path / "cases.jsonl", [{"completion": "x", "answer": "1", "expected": "yes"}])
    assert main(["reward", "test", "--reward", "math_answer", "--cases", str(cases)]) == 2
    assert f"{cases}:1: 'expected' must be a number or null" in capsys.readouterr().err


def test_audit_finds_the_hacks(tmp_path, capsys):
    data = write_jsonl(tmp_path / "rows.jsonl", [
        {"prompt": "What is 6*7?", "answer": "42"},
        {"prompt": "Simplify 2/4.", "answer": r"\frac{1}{2}"},
        {"prompt": "Janet's ducks ...", "answer": "She sells 9 eggs ... #### 18"},
    ])
    out = tmp_path / "audit.json"
    assert main(["reward", "audit", "--reward", "math_answer", "--data", str(data), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    by = {a["attack"]: a for a in report["attacks"]}
    assert set(by) >= {"empty", "whitespace", "gold answer alone", "answer repeated", "conflicting answers",
                       "prompt echoed", "long ramble", "unicode garbage", "huge numbers", "latex bomb"}
    # math_answer alone pays for a bare number (the bare LaTeX gold is read by the last-number
    # fallback as "2": no) and for a list of guesses ending in the right one
    assert by["gold answer alone"]["high"] == 2 and by["conflicting answers"]["high_share"] == 1.0
    for safe in ("empty", "whitespace", "unicode garbage", "huge numbers", "latex bomb"):
        assert by[safe]["high"] == 0, safe
    # the last-number fallback reads the echoed "Simplify 2/4." as 2/4 = 1/2: a real hole it reports
    assert by["prompt echoed"]["high"] == 1
    assert "hackable" in report and "conflicting answers" in report["hackable"]
    assert "conflicting answers" in capsys.readouterr().out
    # gating correctness on a single well-formed answer closes the 'conflicting answers' hack
    cfg = tmp_path / "r.yaml"
    cfg.write_text("rewards:\n  - {name: format_answer, label: fmt, weight: 0, params: {style: boxed}}\n"
                   "  - {name: math_answer, gate: fmt}\n")
    assert main(["reward", "audit", "--rewards", str(cfg), "--data", str(data), "--json", str(out)]) == 0
    by = {a["attack"]: a for a in json.loads(out.read_text())["attacks"]}
    assert by["conflicting answers"]["high"] == 0 and by["answer repeated"]["high"] == 0


def test_audit_legal_terms_flags_copying_the_source(tmp_path):
    src = "The Provider shall not be liable for consequential damages. The Customer shall indemnify the Provider."
    data = write_jsonl(tmp_path / "rows.jsonl", [{"prompt": "Summarise the clause.", "source": src}])
    out = tmp_path / "audit.json"
    assert main(["reward", "audit", "--reward", "legal_terms", "--data", str(data), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["hackable"] == ["source echoed"]


def test_readme_example_matches_shipped_file():
    if not README.is_file() or "Writing a reward function" not in README.read_text():
        pytest.skip("README section not pasted yet")
    assert (HERE / "readme_example.py").read_text().strip() in README.read_text()


def test_audit_of_the_legal_example_ranks_every_attack_below_the_honest_summary(tmp_path, capsys):
    """The legal example's audit (README): every attack on each held-out passage scores below that row's honest
    summary under the composed legal_summary reward, but for two negation flips the rules cannot see."""
    rows = HERE.parents[1] / "examples" / "legal" / "audit_rows.jsonl"
    out = tmp_path / "audit.json"
    assert main(["reward", "audit", "--reward", "legal_summary", "--data", str(rows), "--honest-column", "honest",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    by = {a["attack"]: a for a in report["attacks"]}
    assert {"original_text echoed", "terms stuffed", "negation flipped", "empty"} <= set(by), sorted(by)
    assert by["honest"]["mean"] >= 0.8 and report["hackable"] == ["negation flipped"]
    for name, a in by.items():
        if name != "honest":
            assert a["mean"] < by["honest"]["mean"] - 0.3, (name, a)
            # the known hole (rewards.polarity): a flip with no auxiliary before it ("but with advertisers")
            assert a["beats_honest"] <= (2 if name == "negation flipped" else 0), (name, a)
    assert by["negation flipped"]["rows"] == 12  # 4 honest summaries have no negation or auxiliary to flip
    assert "scored at least the honest completion: negation flipped" in capsys.readouterr().out
