"""Training data: sources, templates, rows named in errors, the resumable prompt stream."""

from __future__ import annotations

import pytest

from rewards import RewardSet, RewardSpec
from rltk.core.config import from_dict
from rltk.data import DataConfig, PromptStream, load_dataset
from rltk.core.errors import UserError


def test_generated_arithmetic_is_the_train_split_with_worked_solutions():
    from evals.arithmetic import make_problems, split_of

    ds = load_dataset(DataConfig(source="arithmetic", limit=50))
    assert len(ds) == 50 and all(split_of(r["a"], r["op"], r["b"]) == "train" for r in ds.rows)
    test_questions = {r["question"] for r in make_problems("test", 300)}
    assert not test_questions & {r["question"] for r in ds.rows}
    assert ds.rows[0]["solution"].endswith(f"#### {ds.rows[0]['answer']}")
    assert ds.messages(0) == [{"role": "user", "content": ds.rows[0]["question"]}]


def test_jsonl_rows_templates_and_system_prompt(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"q": "2+2", "a": "4"}\n\n{"q": "3+3", "a": "6"}\n')
    ds = load_dataset(DataConfig(source=str(path), prompt="Compute {q}.", completion="#### {a}", system_prompt="Be exact."))
    assert ds.where == ["pairs.jsonl:1", "pairs.jsonl:3"]
    assert ds.messages(1) == [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Compute 3+3."}]
    assert ds.completion(1) == "#### 6"


def test_messages_column(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}], "answer": "1"}\n{"messages": "oops"}\n')
    ds = load_dataset(DataConfig(source=str(path), messages_column="messages"))
    assert ds.messages(0) == [{"role": "user", "content": "hi"}]
    with pytest.raises(UserError, match=r"chat\.jsonl:2: column 'messages' must be a list"):
        ds.messages(1)


def test_missing_template_field_names_the_row(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "1+1"}\n{"prompt": "2+2"}\n')
    ds = load_dataset(DataConfig(source=str(path)))
    with pytest.raises(UserError, match=r"rows\.jsonl:2: row lacks field 'question'"):
        ds.check_for_prompts()


def test_rows_must_have_the_rewards_columns(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": null}\n')
    ds = load_dataset(DataConfig(source=str(path)))
    with pytest.raises(UserError, match=r"rows\.jsonl:2: reward 'math_answer' needs column 'answer'"):
        ds.check_rewards(RewardSet([RewardSpec("math_answer")]))
    ds.check_rewards(RewardSet([RewardSpec("format_answer")]))  # needs no column


def test_bad_sources_and_templates():
    with pytest.raises(UserError, match="data file not found"):
        load_dataset(DataConfig(source="/nonexistent/rows.jsonl"))
    with pytest.raises(UserError, match="data: arithmetic: cannot draw"):
        load_dataset(DataConfig(source="arithmetic", limit=10**6, digits=1))
    with pytest.raises(UserError, match=r"data\.prompt: broken template"):
        from_dict(DataConfig, {"prompt": "{question"})


def test_gsm8k_file_from_shared_data(shared_data):
    ds = load_dataset(DataConfig(source=str(shared_data / "gsm8k" / "test.jsonl"), limit=5))
    assert len(ds) == 5 and ds.where[0] == "test.jsonl:1"
    ds.check_rewards(RewardSet([RewardSpec("math_answer")]))


def test_prompt_stream_epochs_and_resume():
    s = PromptStream(5, seed=3)
    first = s.draw(12)
    assert [p for p, _ in first] == list(range(12))
    assert sorted(r for _, r in first[:5]) == sorted(r for _, r in first[5:10]) == [0, 1, 2, 3, 4]
    assert [r for _, r in first[:5]] != [r for _, r in first[5:10]]  # each epoch its own order
    resumed = PromptStream(5, seed=3, cursor=7)
    assert resumed.draw(5) == PromptStream(5, seed=3).draw(12)[7:12]
    assert [r for _, r in PromptStream(4, shuffle=False).draw(6)] == [0, 1, 2, 3, 0, 1]


def test_a_registered_source_is_a_data_source_by_name():
    from rltk.core.rows import Rows
    from rltk.data import SOURCES, DataConfig, load_dataset

    def squares(cfg):
        rows = [{"question": f"{i} * {i}", "solution": str(i * i)} for i in range(cfg.limit or 3)]
        return Rows(rows, [f"squares[{i}]" for i in range(len(rows))], "squares")

    SOURCES.register("test-squares", squares)
    ds = load_dataset(DataConfig(source="test-squares", limit=4))
    assert len(ds) == 4 and ds.where[3] == "squares[3]" and ds.completion(2) == "4"
    assert ds.messages(1)[-1]["content"] == "1 * 1"
