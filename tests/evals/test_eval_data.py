from __future__ import annotations

import json

import pytest

from evals.tasks import get_task
from rltk.core.errors import UserError
from rltk.core.rows import load_hub_rows, read_rows


def test_jsonl_rows_keep_their_line_numbers(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": "2"}\n')
    rows = read_rows(p)
    assert [r["question"] for r in rows.rows] == ["a", "b"]
    assert rows.where == ["rows.jsonl:1", "rows.jsonl:3"]  # the blank line is skipped, not renumbered


def test_row_lacking_a_field_is_named_by_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"question": "a", "answer": "1"}\n{"question": "b"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: row lacks field 'answer' \(task gsm8k needs question, answer\)"):
        get_task("gsm8k").check_rows(read_rows(p))


def test_null_field_counts_as_missing(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"problem": "x", "answer": null}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:1: row lacks field 'answer'"):
        get_task("math500").check_rows(read_rows(p))


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("broken.jsonl", '{"a": 1}\n{"a": \n', r"broken.jsonl:2: invalid JSON"),
        ("list.jsonl", "[1, 2]\n", r"list.jsonl:1: each line must be a JSON object"),
        ("short.tsv", "text\tlabel\nhello\n", r"short.tsv:2: expected 2 fields"),
        ("rows.xml", "<rows/>", r"unknown data format .xml"),
        ("scalar.json", "3", r"scalar.json: top level must be a list or a mapping"),
    ],
)
def test_malformed_files_are_user_errors(tmp_path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(UserError, match=message):
        read_rows(p)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="data file not found"):
        read_rows(tmp_path / "nope.jsonl")


def test_tsv_without_quoting_and_json_mapping(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text('text\tlabel\nthe "service" may end\tOther\n')
    assert read_rows(tsv).rows == [{"text": 'the "service" may end', "label": "Other"}]
    js = tmp_path / "m.json"
    js.write_text(json.dumps({"u1": {"uid": "u1", "x": 1}, "u2": {"uid": "u2", "x": 2}}))
    rows = read_rows(js)
    assert [r["uid"] for r in rows.rows] == ["u1", "u2"] and rows.where[1] == "m.json:'u2'"


def test_hub_loader_maps_rows_and_offline_errors_say_use_data(monkeypatch):
    import datasets

    calls = []

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        return [{"question": "q", "answer": "a #### 1"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows = get_task("gsm8k").load(None)
    assert calls == [("openai/gsm8k", "main", "test")]
    assert rows.rows[0]["answer"] == "a #### 1" and rows.where == ["openai/gsm8k[test][0]"]

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'HuggingFaceH4/MATH-500' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(UserError, match=r"cannot load hub dataset 'HuggingFaceH4/MATH-500'.*pass --data"):
        load_hub_rows("HuggingFaceH4/MATH-500", "test")


# --- the real benchmark files beside the repo --------------------------------------------------

@pytest.mark.parametrize(
    "task, rel, n",
    [
        ("gsm8k", "gsm8k/test.jsonl", 1319),
        ("math500", "math500/test.jsonl", 500),
        ("unfair_tos", "legal/legalbench_unfair_tos/test.tsv", 3841),
        ("legal_summary", "legal/plain_english_contracts/all_v1.json", 337),  # passages holding a glossary term
    ],
)
def test_shared_benchmark_files_load_and_validate(shared_data, task, rel, n):
    t = get_task(task)
    rows = t.load(str(shared_data / rel))
    assert len(rows) == n
    t.check_rows(rows)  # every row has the fields the task and its rewards need
    ids = [t.item_id(r, i) for i, r in enumerate(rows.rows)]
    assert len(set(ids)) == n  # item ids identify items (comparisons pair on them)


def test_a_task_reads_a_parquet_file_through_datasets(tmp_path):
    import datasets

    p = tmp_path / "gsm8k.parquet"
    datasets.Dataset.from_list([{"question": "a", "answer": "x #### 1"}, {"question": "b", "answer": None}]).to_parquet(p)
    rows = read_rows(p)
    assert rows.rows[0] == {"question": "a", "answer": "x #### 1"} and rows.where == ["gsm8k.parquet:row 1", "gsm8k.parquet:row 2"]
    with pytest.raises(UserError, match=r"gsm8k\.parquet:row 2: row lacks field 'answer'"):
        get_task("gsm8k").check_rows(rows)
