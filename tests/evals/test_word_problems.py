"""Generated word problems (evals.word_problems): determinism, disjoint splits, the step knob, gold arithmetic
(re-derived here with Fractions from the gold text), the ``word_problems`` eval task and data source."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest

from evals.items import pick_demos
from evals.tasks import get_task
from evals.word_problems import FAMILIES, MAX_NUMBER, make_word_problems, parse_steps, split_of
from evals.word_templates import NAMES
from rltk.core.errors import UserError
from rltk.data import DataConfig, load_dataset

try:
    from rewards.steps import check_steps
except ImportError as e:  # helper A's step_check reward, in progress
    check_steps, STEPS_MISSING = None, str(e)

N_SPLIT = 5000
NAME_OR_NUMBER = re.compile(r"\d+|" + "|".join(NAMES))


@pytest.fixture(scope="module")
def splits():
    return make_word_problems("train", N_SPLIT), make_word_problems("test", N_SPLIT)


# --- a small exact evaluator for our own gold expressions: numbers ($12, 20%), + - × /, parentheses ---

def _tokens(expr: str) -> list[str | Fraction]:
    out: list[str | Fraction] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch == " ":
            i += 1
        elif ch in "+-×/()":
            out.append(ch)
            i += 1
        else:
            j = i + (ch == "$")
            k = j
            while k < len(expr) and expr[k].isdigit():
                k += 1
            assert k > j, f"not a number at {expr[i:]!r}"
            value = Fraction(int(expr[j:k]))
            if k < len(expr) and expr[k] == "%":
                value, k = value / 100, k + 1
            out.append(value)
            i = k
    return out


def _evaluate(expr: str) -> Fraction:
    toks = _tokens(expr)
    pos = 0

    def atom() -> Fraction:
        nonlocal pos
        tok = toks[pos]
        pos += 1
        if tok == "(":
            value = sum_()
            assert toks[pos] == ")"
            pos += 1
            return value
        assert isinstance(tok, Fraction), f"unexpected {tok!r} in {expr!r}"
        return tok

    def product() -> Fraction:
        nonlocal pos
        value = atom()
        while pos < len(toks) and toks[pos] in ("×", "/"):
            op = toks[pos]
            pos += 1
            value = value * atom() if op == "×" else value / atom()
        return value

    def sum_() -> Fraction:
        nonlocal pos
        value = product()
        while pos < len(toks) and toks[pos] in ("+", "-"):
            op = toks[pos]
            pos += 1
            value = value + product() if op == "+" else value - product()
        return value

    value = sum_()
    assert pos == len(toks), f"trailing tokens in {expr!r}"
    return value


def _equations(answer: str) -> list[tuple[str, str, Fraction]]:
    """(name, expression, result) of each gold line before ``#### n``; the result's unit is dropped."""
    *lines, last = answer.split("\n")
    assert last.startswith("#### ")
    out = []
    for line in lines:
        name, expr, result = line.split(" = ")
        assert name.isalpha() and name[0].isupper(), line
        out.append((name, expr, _evaluate(result.split(" ")[0])))
    return out


def _operands(expr: str) -> set[Fraction]:
    return {t for t in _tokens(expr) if isinstance(t, Fraction)}


# --- the generator ---

def test_same_arguments_same_problems_and_a_stable_prefix():
    a = make_word_problems("train", 300, seed=3)
    assert a == make_word_problems("train", 300, seed=3)
    assert a != make_word_problems("train", 300, seed=4)
    for split, steps in (("train", (2, 4)), ("test", 3), ("test", "2-3")):
        long = make_word_problems(split, 800, seed=1, steps=steps)
        assert make_word_problems(split, 60, seed=1, steps=steps) == long[:60]


def test_train_and_test_never_overlap(splits):
    train, test = splits
    assert len(train) == len(test) == N_SPLIT
    for rows, split in ((train, "train"), (test, "test")):
        assert len({r["id"] for r in rows}) == len({r["question"] for r in rows}) == N_SPLIT
        assert all(split_of(r["template"], r["steps"], r["numbers"]) == split for r in rows)
    assert not {r["id"] for r in train} & {r["id"] for r in test}
    assert not {r["question"] for r in train} & {r["question"] for r in test}
    assert not {r["answer"] for r in train} & {r["answer"] for r in test}


def test_every_family_and_step_count_is_drawn(splits):
    train, _ = splits
    assert len(FAMILIES) >= 6
    counts = {}
    for r in train:
        counts[r["template"], r["steps"]] = counts.get((r["template"], r["steps"]), 0) + 1
    # 7 families x 3 step counts drawn uniformly: each pair near 5000/21 = 238 (no pair starved)
    assert set(counts) == {(f, s) for f in FAMILIES for s in (2, 3, 4)}
    assert min(counts.values()) > 100, counts
    # several phrasings per family: distinct question texts once numbers and names are blanked out
    for family in FAMILIES:
        shapes = {re.sub(NAME_OR_NUMBER, "_", r["question"]) for r in train if r["template"] == family}
        assert len(shapes) >= 6, (family, shapes)


@pytest.mark.parametrize("steps", [2, 3, 4])
def test_step_knob_is_the_number_of_equations(steps):
    rows = make_word_problems("train", 210, seed=2, steps=steps)
    assert {r["steps"] for r in rows} == {steps}
    assert all(len(_equations(r["answer"])) == steps for r in rows)
    assert {r["template"] for r in rows} == set(FAMILIES)


def test_step_ranges_templates_and_bad_knobs():
    rows = make_word_problems("test", 200, steps="2-3", templates=["distance", "work"])
    assert {r["steps"] for r in rows} == {2, 3} and {r["template"] for r in rows} == {"distance", "work"}
    assert parse_steps(" 3-4 ") == (3, 4)
    for bad in (1, 5, "4-2", "two", "2-4-6", (2, 9), True, 2.5):
        with pytest.raises(ValueError, match="steps"):
            make_word_problems("train", 5, steps=bad)
    with pytest.raises(ValueError, match="unknown word-problem template 'speed'"):
        make_word_problems("train", 5, templates=["speed"])
    with pytest.raises(ValueError, match="split"):
        make_word_problems("dev", 5)


def test_every_gold_step_is_exact_integer_arithmetic(splits):
    train, test = splits
    for r in [*train[:2500], *test[:500]]:
        eqs = _equations(r["answer"])
        assert r["solution"] == r["answer"] and r["id"].startswith("word-")
        for i, (name, expr, result) in enumerate(eqs):
            assert _evaluate(expr) == result, f"{r['id']}: {name} = {expr} != {result}"
            assert result.denominator == 1 and 0 <= result <= MAX_NUMBER, (r["id"], name, result)
            if i < len(eqs) - 1:  # each intermediate result is reused by a later step
                assert any(result in _operands(e) for _, e, _ in eqs[i + 1:]), (r["id"], name)
        assert r["final"] == str(eqs[-1][2]) and r["answer"].endswith(f"\n#### {r['final']}")
        assert all(len(tok.strip("$%,.?")) <= 4 for tok in r["question"].split() if tok.strip("$%,.?").isdigit())


@pytest.mark.skipif(check_steps is None, reason="rewards.steps.check_steps not importable yet (helper A)")
def test_golds_pass_the_step_checker(splits):
    train, _ = splits
    results = [check_steps(r["answer"]) for r in train[:2000]]
    bad = [r["answer"] for r, res in zip(train, results) if not res.all_valid]
    assert not bad, f"{len(bad)}/2000 golds fail check_steps, e.g. {bad[:2]}"
    # the checker finds exactly one step per gold equation, and nothing it cannot parse
    assert all(len(res.steps) == r["steps"] and res.unparsed == 0 for r, res in zip(train, results))


# --- the eval task ---

def _score(task, completions, rows):
    cols = {k: [r.get(k) for r in rows] for k in {k for r in rows for k in r}}
    return task.reward_set().score(completions, **cols)


def test_task_rows_are_held_out_gold_scores_and_prefix():
    task = get_task("word_problems", n=300)
    rows = task.load(None).rows
    assert len(rows) == 300 and all(split_of(r["template"], r["steps"], r["numbers"]) == "test" for r in rows)
    train = {r["question"] for r in make_word_problems("train", 3000)}
    assert not train & {r["question"] for r in rows}
    assert [r["id"] for r in get_task("word_problems", n=40).load(None).rows] == [r["id"] for r in rows[:40]]
    assert task.max_new_tokens == 160 and "####" in task.system
    assert task.gold(rows[0]) == task.extract(rows[0]["answer"]) == rows[0]["final"]
    s = _score(task, [r["answer"] for r in rows[:16]], rows[:16])
    assert s.components["correct"] == [1.0] * 16 and s.components["format"] == [1.0] * 16
    wrong = _score(task, [f"#### {int(r['final']) + 1}" for r in rows[:16]], rows[:16])
    assert wrong.components["correct"] == [0.0] * 16


def test_task_options_demos_and_user_data(tmp_path):
    rows = get_task("word_problems", n=30, steps=3, templates="average,convert").load(None).rows
    assert {r["steps"] for r in rows} == {3} and {r["template"] for r in rows} == {"average", "convert"}
    assert {r["steps"] for r in get_task("word_problems", n=60, steps="2-3").load(None).rows} == {2, 3}
    for bad, match in (({"steps": "5"}, "steps"), ({"n": 0}, "n must"), ({"nn": 3}, "bad option"),
                       ({"templates": "speed"}, "speed")):
        with pytest.raises(UserError, match=match):
            get_task("word_problems", **bad).load(None)
    task = get_task("word_problems", n=50)
    test_rows = task.load(None)
    demos = pick_demos(task, 2, test_rows, test_rows.select(range(50)), None, None, seed=0)
    assert all(split_of(d["template"], d["steps"], d["numbers"]) == "train" for d in demos)
    assert task.demo(demos[0]) == demos[0]["solution"] and "####" in task.demo(demos[0])
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"question": "Ann has 3 bags of 4 apples. How many?", "answer": "3 × 4 = 12\n#### 12"}) + "\n")
    mine = task.load(str(path)).rows
    assert task.gold(mine[0]) == "12" and _score(task, ["Apples = 3 × 4 = 12\n#### 12"], mine).components["correct"] == [1.0]


# --- the data source ---

def test_data_source_rows_options_and_bad_keys():
    ds = load_dataset(DataConfig(source="word_problems", limit=120, data_seed=2,
                                 options={"steps": 4, "templates": ["shopping", "discount"]}))
    assert len(ds.rows) == 120 and ds.where[5] == "word_problems[train][5]"
    assert {r["steps"] for r in ds.rows} == {4} and {r["template"] for r in ds.rows} == {"shopping", "discount"}
    assert ds.rows == make_word_problems("train", 120, seed=2, steps=4, templates=["shopping", "discount"])
    assert all(r["solution"] == r["answer"] for r in ds.rows)
    default = load_dataset(DataConfig(source="word_problems"))
    assert len(default.rows) == 5000 and {r["template"] for r in default.rows} == set(FAMILIES)
    with pytest.raises(UserError, match="unknown key 'step'"):
        load_dataset(DataConfig(source="word_problems", options={"step": 3}))
    with pytest.raises(UserError, match="steps"):
        load_dataset(DataConfig(source="word_problems", options={"steps": "1-3"}))
    with pytest.raises(UserError, match="template 'speed'"):
        load_dataset(DataConfig(source="word_problems", options={"templates": ["speed"]}))
