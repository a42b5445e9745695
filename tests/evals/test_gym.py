"""reasoning-gym as rows (evals.gym), reward (rewards.gym: gym_score) and eval task (evals.tasks.gym)."""

from __future__ import annotations

import json
import sys
import re
from types import SimpleNamespace

import pytest

pytest.importorskip("reasoning_gym", reason="reasoning-gym is optional: pip install 'rltk[gym]'")

import evals.run as run_mod  # noqa: E402
from evals import evaluate  # noqa: E402
from evals.generation import Completion  # noqa: E402
from evals.gym import SEED_STRIDE, SPLITS, gym_rows, gym_source, split_seed  # noqa: E402
from evals.tasks import get_task  # noqa: E402
from evals.tasks.gym import gym_task  # noqa: E402
from rewards import RewardSet, RewardSpec, get_reward  # noqa: E402
from rewards.core import collect_failures  # noqa: E402
from rewards.gym import GymScore, extract_gym_answer  # noqa: E402
from rltk.core.errors import UserError  # noqa: E402
from rltk.models import tiny_policy  # noqa: E402


def _off_by_one(answer: str) -> str:
    """A wrong answer of the same shape: its first number + 1 (``$\\dfrac{107}{493}$`` -> ``...{108}{493}$``)."""
    return re.sub(r"\d+", lambda m: str(int(m.group(0)) + 1), answer, count=1)


MATH = ["basic_arithmetic", "chain_sum", "fraction_simplification", "decimal_arithmetic", "gsm_symbolic"]


def _columns(rows):
    return {k: [r[k] for r in rows] for k in rows[0]}


@pytest.mark.parametrize("name", MATH)
def test_rows_load_with_the_entry_the_scorer_needs(name):
    rows = gym_rows(name, "test", 30, seed=1)
    assert len(rows) == 30 and rows.source == f"gym:{name}:test:seed=1"
    r = rows.rows[0]
    assert set(r) == {"question", "answer", "gym_dataset", "gym_entry", "gym_config", "id"}
    assert r["gym_dataset"] == name and isinstance(r["answer"], str) and r["answer"] == str(r["gym_entry"]["answer"])
    assert r["gym_entry"]["question"] == r["question"] and "metadata" in r["gym_entry"]
    assert json.loads(json.dumps(rows.rows)) == rows.rows  # JSON-safe as written (gsm_symbolic holds Fractions)
    assert len({x["id"] for x in rows.rows}) == 30
    assert gym_rows(name, "test", 30, seed=1).rows == rows.rows  # deterministic
    assert gym_rows(name, "test", 30, seed=2).rows != rows.rows


def test_split_seeds_give_every_seed_and_split_its_own_range():
    starts = sorted(split_seed(s, seed) for seed in range(4) for s in SPLITS)
    assert len(set(starts)) == 12 and all(b - a >= SEED_STRIDE for a, b in zip(starts, starts[1:]))
    with pytest.raises(UserError, match="split 'dev'"):
        split_seed("dev")


@pytest.mark.parametrize("name", ["prime_factorization", "chain_sum", "fraction_simplification"])
@pytest.mark.parametrize("split", ["test", "validation"])
def test_held_out_splits_never_repeat_a_train_question(name, split):
    n = 300
    train = {r["question"] for r in gym_rows(name, "train", n).rows}
    held = gym_rows(name, split, n)
    assert len(held) == n and not {r["question"] for r in held.rows} & train
    if name == "prime_factorization":  # a small problem space: the raw draws do repeat train questions
        assert held.extra["gym"]["dropped_train_overlap"] > 0


def test_too_small_a_problem_space_is_a_user_error():
    with pytest.raises(UserError, match="too few distinct problems"):
        gym_rows("chain_sum", "test", 1000, min_terms=2, max_terms=2, min_digits=1, max_digits=1)  # ~200 problems


def test_unknown_dataset_and_bad_config_name_the_culprit():
    with pytest.raises(UserError, match=r"unknown reasoning-gym dataset 'chain_sums' \(did you mean chain_sum"):
        gym_rows("chain_sums", "test", 5)
    with pytest.raises(UserError, match=r"unknown config key 'min_term' \(did you mean min_terms"):
        gym_rows("chain_sum", "test", 5, min_term=3)
    with pytest.raises(UserError, match="'size' is set by rltk: give n instead"):
        gym_rows("chain_sum", "test", 5, **{"size": 3})
    with pytest.raises(UserError, match="'seed' is set by rltk: give seed instead"):
        get_task("gym", dataset="chain_sum", config={"seed": 3})
    with pytest.raises(UserError, match="bad config"):
        gym_rows("chain_sum", "test", 5, min_terms=5, max_terms=2)


def test_missing_reasoning_gym_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # import now raises ImportError
    with pytest.raises(UserError, match=r"needs reasoning-gym: pip install 'rltk\[gym\]'"):
        gym_rows("chain_sum", "test", 5)


@pytest.mark.parametrize("name", MATH)
def test_gym_score_is_one_for_the_gold_and_zero_for_a_wrong_answer(name):
    rows = gym_rows(name, "test", 20).rows
    cols = _columns(rows)
    gold = [f"Let me work it out.\n#### {r['answer']}" for r in rows]
    wrong = [f"#### {_off_by_one(r['answer'])}" for r in rows]
    assert get_reward("gym_score")(gold, **cols) == [1.0] * 20
    assert get_reward("gym_score")(wrong, **cols) == [0.0] * 20


def test_answer_forms_partial_credit_and_limits():
    rows = gym_rows("fraction_simplification", "test", 3).rows
    cols, ans = _columns(rows), rows[0]["answer"].strip("$")
    forms = [f"\\boxed{{{ans}}}", f"<answer>{ans}</answer>", f"#### {ans}", ans]
    one = {k: v[:1] * 4 for k, v in cols.items()}
    assert GymScore()(forms, **one) == [1.0, 1.0, 1.0, 0.0]  # a bare answer is no answer form
    assert GymScore(extract="none")(forms, **one)[3] == 1.0
    assert GymScore(extract="boxed")(forms, **one) == [1.0, 0.0, 0.0, 0.0]
    p, q = ans.split("/")
    unreduced = f"#### {int(p) * 2}/{int(q) * 2}"  # right value, not in lowest terms
    assert GymScore()([unreduced], **cols)[:1] == [0.0]
    assert 0.0 < GymScore(partial=True)([unreduced], **{k: v[:1] for k, v in cols.items()})[0] < 1.0
    assert GymScore(max_answer_chars=5)([f"#### {ans}" + " " * 2 + "9" * 10], **{k: v[:1] for k, v in cols.items()}) == [0.0]
    assert GymScore()([[{"role": "assistant", "content": f"#### {ans}"}]], **{k: v[:1] for k, v in cols.items()}) == [1.0]
    assert extract_gym_answer("#### 3 then \\boxed{4}") == "4" and extract_gym_answer("<answer> </answer>") is None


def test_gym_score_names_missing_columns():
    with pytest.raises(UserError, match="needs column.*gym_dataset, gym_entry"):
        GymScore()(["#### 1"], answer=["1"])
    rs = RewardSet([RewardSpec("gym_score")])
    assert rs.required_columns() >= {"gym_dataset", "gym_entry"}


def test_a_scorer_that_evaluates_model_text_runs_bounded_in_the_sandbox():
    """countdown's scorer runs sympy's parse_expr on the answer: a power tower must time out in a
    worker (None, a reported failure), never hang this process; the gold still scores 1.0."""
    rows = gym_rows("countdown", "test", 1).rows
    cols = {k: v * 2 for k, v in _columns(rows).items()}
    with collect_failures() as failures:
        scores = GymScore(timeout_s=2.0)([f"#### {rows[0]['answer']}", "#### 9**9**9**9**9"], **cols)
    assert scores == [1.0, None] and [i for i, _ in failures] == [1]
    as_text = {**cols, "gym_entry": [json.dumps(e) for e in cols["gym_entry"]]}  # a CSV file holds the entry as text
    assert GymScore()([f"#### {rows[0]['answer']}"] * 2, **as_text) == [1.0, 1.0]


def test_the_task_loads_held_out_rows_and_scores_them():
    task = get_task("gym", dataset="chain_sum", n=12, seed=3, min_terms=3)
    assert task.name == "gym:chain_sum" and task.options["config"] == {"min_terms": 3}
    rows = task.load(None)
    task.check_rows(rows)
    assert len(rows) == 12 and all(r["gym_entry"]["metadata"]["num_terms"] >= 3 for r in rows.rows)
    msgs = task.messages(rows.rows[0])
    assert "#### <answer>" in msgs[0]["content"] and msgs[-1]["content"] == rows.rows[0]["question"]
    assert task.gold(rows.rows[0]) == rows.rows[0]["answer"] and task.extract("so\n#### 17") == "17"
    same = gym_task(dataset="chain_sum", n=12, seed=3, config={"min_terms": 3})
    assert same.load(None).rows == rows.rows
    assert get_task("gym").description.startswith("reasoning-gym DATASET")  # `rltk eval tasks` lists it
    with pytest.raises(UserError, match="dataset=NAME"):
        get_task("gym").load(None)
    with pytest.raises(UserError, match="unknown config key 'min_term'"):
        get_task("gym", dataset="chain_sum", min_term=3)
    with pytest.raises(UserError, match="both as a task arg and inside config"):
        get_task("gym", dataset="chain_sum", config={"min_terms": 3}, min_terms=4)


def test_evaluate_end_to_end_with_known_answers(monkeypatch):
    """evaluate() on the task, with a generator that answers items 0..4 right and the rest wrong:
    accuracy is exactly 5/8, and every format is right."""
    task = gym_task(dataset="basic_arithmetic", n=8)
    rows = task.load(None).rows

    def fake_generate(policy, prompts, settings, progress=None, stats=None):
        return [[Completion(f"#### {rows[i]['answer'] if i < 5 else _off_by_one(rows[i]['answer'])}", 3, False)]
                for i in range(len(prompts))]

    monkeypatch.setattr(run_mod, "generate", fake_generate)
    r = evaluate(tiny_policy(), task, progress=False)
    assert r.metrics["n_items"] == 8 and r.metrics["accuracy"] == pytest.approx(5 / 8)
    assert r.metrics["format_rate"] == 1.0 and not any(r.metrics["reward_failures"].values())
    assert [rec["id"] for rec in r.records] == [row["id"] for row in rows]


def test_evaluate_on_the_tiny_model():
    r = evaluate(tiny_policy(), gym_task(dataset="chain_sum", n=3, max_new_tokens=4), progress=False)
    assert r.metrics["n_items"] == 3 and not any(r.metrics["reward_failures"].values())
    assert 0.0 <= r.metrics["accuracy"] <= 1.0


def test_gym_source_gives_training_rows():
    cfg = SimpleNamespace(source="gym:gsm_symbolic", split="train", limit=6, data_seed=0, options={})
    rows = gym_source(cfg)
    assert len(rows) == 6 and all(r["solution"] == f"#### {r['answer']}" for r in rows.rows)
    assert rows.rows == [dict(r, solution=f"#### {r['answer']}") for r in gym_rows("gsm_symbolic", "train", 6).rows]
    with pytest.raises(UserError, match="gym:chain_sum"):
        gym_source(SimpleNamespace(source="gym", split="train", limit=3, data_seed=0, options={}))


def test_gym_by_name_as_eval_task_and_data_source():
    """``--task gym:NAME`` and ``data.source: gym:NAME`` reach the dataset through the registries."""
    from evals.tasks import get_task
    from rltk.data import DataConfig, load_dataset

    task = get_task("gym:chain_sum", n=4)
    rows = task.load(None)
    assert len(rows.rows) == 4 and all(r["gym_dataset"] == "chain_sum" for r in rows.rows)
    with pytest.raises(UserError, match="already names its dataset"):
        get_task("gym:chain_sum", dataset="basic_arithmetic")
    ds = load_dataset(DataConfig(source="gym:basic_arithmetic", limit=3))
    assert len(ds.rows) == 3 and ds.rows[0]["gym_dataset"] == "basic_arithmetic"
    test_q = {r["question"] for r in task.load(None).rows}
    train_q = {r["question"] for r in load_dataset(DataConfig(source="gym:chain_sum", limit=4)).rows}
    assert not test_q & train_q
