from __future__ import annotations

import json

import pytest

from evals.arithmetic import make_problems, split_of
from evals.items import pick_demos
from evals.tasks import TASKS, get_task, load_user_task
from rltk.core.errors import UserError
from rltk.core.rows import Rows


def _score(task, completions, rows):
    rs = task.reward_set()
    cols = {k: [r.get(k) for r in rows] for k in {k for r in rows for k in r}}
    return rs.score(completions, **cols)


def test_builtin_tasks_are_registered():
    assert {"arithmetic", "gsm8k", "math500", "legal_summary", "unfair_tos", "word_problems", "gym"} <= set(TASKS.names())


def test_arithmetic_rows_are_held_out_and_a_stable_prefix():
    task = get_task("arithmetic", n=400)
    rows = task.load(None).rows
    assert all(split_of(r["a"], r["op"], r["b"]) == "test" for r in rows)
    train = {r["question"] for r in make_problems("train", 2000, seed=0)}
    assert not train & {r["question"] for r in rows}
    # --limit 100 sees the same items whatever n the task was built with
    assert [r["id"] for r in get_task("arithmetic", n=100).load(None).rows] == [r["id"] for r in rows[:100]]


def test_arithmetic_task_options_and_bad_options():
    rows = get_task("arithmetic", ops="*", digits=1).load(None).rows[:20]
    assert all(r["op"] == "*" and r["a"] < 10 and r["b"] < 10 for r in rows)
    with pytest.raises(UserError, match="bad option"):
        get_task("arithmetic", digitz=3)


def test_arithmetic_further_items_in_the_other_notation():
    """The issue-17 check: 1,000 items other than the main job's 300 (seed 0), also written with '*' for '×'."""
    main = {r["expr"] for r in get_task("arithmetic", n=300).load(None).rows}
    further = get_task("arithmetic", n=1000, data_seed=7, exclude_seed=0, exclude_n=300).load(None).rows
    assert len(further) == 1000 and not main & {r["expr"] for r in further}
    assert len({r["id"] for r in further}) == 1000
    star = get_task("arithmetic", n=1000, data_seed=7, exclude_seed=0, exclude_n=300, mul_sign="*").load(None).rows
    assert [r["expr"] for r in star] == [r["expr"] for r in further]  # the same problems
    products = [(a, b) for a, b in zip(further, star) if a["op"] == "*"]
    assert products and all("×" in a["question"] and "*" in b["question"] and "×" not in b["question"] for a, b in products)
    assert all(a["question"] == b["question"] for a, b in zip(further, star) if a["op"] != "*")
    task = get_task("arithmetic", n=10, mul_sign="*")
    assert _score(task, ["#### " + r["answer"] for r in task.load(None).rows], task.load(None).rows).components["correct"] == [1.0] * 10
    with pytest.raises(UserError, match="mul_sign"):
        get_task("arithmetic", mul_sign="·")


def test_math_tasks_score_gold_solutions_as_correct(shared_data):
    gsm = get_task("gsm8k")
    rows = gsm.load(str(shared_data / "gsm8k/test.jsonl")).rows[:12]
    # the gold worked solution ends "#### n": right answer, right format; a wrong number is wrong
    s = _score(gsm, [r["answer"] for r in rows], rows)
    assert s.components["correct"] == [1.0] * 12 and s.components["format"] == [1.0] * 12
    wrong = _score(gsm, ["#### 123456789"] * 12, rows)
    assert wrong.components["correct"] == [0.0] * 12
    assert gsm.extract(rows[0]["answer"]) == gsm.gold(rows[0]) == "18"

    m5 = get_task("math500")
    rows = m5.load(str(shared_data / "math500/test.jsonl")).rows[:12]
    s = _score(m5, [f"So the answer is \\boxed{{{r['answer']}}}." for r in rows], rows)
    assert s.components["correct"] == [1.0] * 12 and s.components["format"] == [1.0] * 12


def test_unfair_tos_exact_label_scoring():
    task = get_task("unfair_tos")
    rows = [{"text": "we may terminate your account", "label": "Unilateral termination"}] * 5
    s = _score(task, ["Unilateral termination", "**unilateral termination.**", "Label: Other",
                      "This looks like unilateral termination to me", "Arbitration"], rows)
    assert s.components["correct"] == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert s.components["format"] == [1.0, 1.0, 1.0, 0.0, 1.0]  # the 4th is not just a label
    strict = get_task("unfair_tos", strict=True)
    assert _score(strict, ["This looks like unilateral termination to me"], rows[:1]).components["correct"] == [0.0]
    assert task.extract("I would say: Choice of law.") == "Choice of law"


def test_legal_summary_scores_precise_terms_and_shape():
    task = get_task("legal_summary")
    src = ("The provider shall not be liable for indirect damages arising from the service, and you agree to "
           "indemnify the provider against claims brought by third parties in connection with your content.")
    row = {"uid": "x", "original_text": src, "reference_summary": "-"}
    precise = "The provider is not liable for indirect damages, and you must indemnify it against claims about your content."
    lay = "The provider is not responsible for indirect losses, and you must pay it back for claims by others."
    rambling = "- stuff\n- " + " ".join(["things"] * 200)
    s = _score(task, [precise, lay, rambling, src, "I do not know."], [row] * 5)
    terms, shape = s.components["legal_terms"], s.components["shape"]
    assert terms[0] == 1.0 and terms[1] < terms[0]  # lay variants instead of the terms cost points
    assert shape[0] == 1.0 and shape[1] == 1.0 and shape[2] < 0.5  # a long bullet list is no summary
    graded = [task.graded_score({k: v[i] for k, v in s.components.items()}) for i in range(5)]
    assert graded[0] == 1.0
    assert graded[3] == 0.0  # copying the passage keeps every term but is no summary (no_copy: 0)
    assert s.components["no_copy"][0] == 1.0
    assert graded[4] == 0.0  # a non-answer keeps no term


def test_legal_summary_rows_hold_glossary_terms_and_references_beat_non_answers(shared_data):
    task = get_task("legal_summary")
    path = str(shared_data / "legal/plain_english_contracts/all_v1.json")
    rows = task.load(path).rows
    assert len(rows) == 337 and len(get_task("legal_summary", all_rows=True).load(path)) == 446
    rows = rows[:60]

    def mean_score(completions):
        s = _score(task, completions, rows)
        return sum(task.graded_score({k: v[i] for k, v in s.components.items()}) for i in range(len(rows))) / len(rows)

    assert mean_score(["I do not know."] * len(rows)) == 0.0
    assert mean_score([r["reference_summary"] for r in rows]) > 0.1


def test_user_task_from_yaml(tmp_path):
    (tmp_path / "rows.jsonl").write_text(
        json.dumps({"id": "q1", "q": "2+3", "answer": "5"}) + "\n" + json.dumps({"id": "q2", "q": "4*4", "answer": "16"}) + "\n"
    )
    spec = tmp_path / "task.yaml"
    spec.write_text(
        "name: mini\n"
        "data: rows.jsonl\n"
        "system: Answer with '#### n'.\n"
        "prompt: 'Compute {q}.'\n"
        "demo: '#### {answer}'\n"
        "id_column: id\n"
        "rewards:\n"
        "  - {name: math_answer, label: correct}\n"
        "  - {name: format_answer, params: {style: '####'}, label: format}\n"
        "correct: correct\n"
        "format: format\n"
        "max_new_tokens: 16\n"
    )
    task = get_task(str(spec))
    rows = task.load(None)  # 'data' is relative to the YAML file
    task.check_rows(rows)
    assert [task.item_id(r, i) for i, r in enumerate(rows.rows)] == ["q1", "q2"]
    msgs = task.messages(rows.rows[1], demos=[rows.rows[0]])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == "#### 5" and msgs[3]["content"] == "Compute 4*4."
    s = _score(task, ["#### 5", "#### 15"], rows.rows)
    assert s.components["correct"] == [1.0, 0.0] and task.max_new_tokens == 16


@pytest.mark.parametrize(
    "body, message",
    [
        ("prompt: 'x {q}'\nrewards: [{name: math_answer}]\ncorrect: nope\n", r"'correct: nope' is not the label of one of its rewards"),
        ("prompt: 'x {q.__class__}'\nrewards: [{name: math_answer}]\n", r"template fields must be plain names like \{question\}, got \{q.__class__\}"),
        ("prompt: 'x {q}'\nrewards: [{name: math_answr}]\n", r"unknown reward 'math_answr'"),
        ("prompt: 'x {q}'\nrewardz: []\n", r"unknown key 'rewardz'"),
    ],
)
def test_bad_user_task_files_are_one_line_errors(tmp_path, body, message):
    spec = tmp_path / "task.yaml"
    spec.write_text("name: bad\ndata: rows.jsonl\n" + body)
    with pytest.raises(UserError, match=message):
        task = load_user_task(spec)
        task.reward_set()


def test_user_task_row_missing_a_template_field_names_the_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"q": "1+1", "answer": "2"}\n{"question": "2+2", "answer": "4"}\n')
    spec = tmp_path / "task.yaml"
    spec.write_text("name: t\ndata: rows.jsonl\nprompt: '{q}'\nrewards: [{name: math_answer}]\ncorrect: math_answer\n")
    task = load_user_task(spec)
    with pytest.raises(UserError, match=r"rows.jsonl:2: row lacks field 'q'"):
        task.check_rows(task.load(None))


def test_few_shot_demos_never_include_evaluated_items():
    task = get_task("gsm8k")
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(10)]
    src = Rows(rows, [f"r:{i}" for i in range(10)], "mem")
    evaluated = src.select(range(7))
    demos = pick_demos(task, 3, src, evaluated, data=None, few_shot_data=None, seed=0, from_source=False)
    assert sorted(d["question"] for d in demos) == ["q7", "q8", "q9"]
    with pytest.raises(UserError, match="only 3 rows for 4 few-shot demos"):
        pick_demos(task, 4, src, evaluated, data=None, few_shot_data=None, seed=0, from_source=False)
    # arithmetic draws its demos from the training split
    arith = get_task("arithmetic")
    test_rows = arith.load(None)
    demos = pick_demos(arith, 2, test_rows, test_rows.select(range(50)), None, None, seed=0)
    assert all(split_of(d["a"], d["op"], d["b"]) == "train" for d in demos)
    assert "####" in arith.demo(demos[0])
