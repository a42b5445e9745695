"""Data files read as written: JSONL split on newlines only, CSV quoted newlines kept with true line numbers."""

from __future__ import annotations

import json

import pytest

from rltk.core.errors import UserError
from rltk.core.rows import read_rows


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    text = "first\u2028second\u2029third\x85fourth\x0cfifth"
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"q": text}, ensure_ascii=False) + "\n" + json.dumps({"q": "b"}) + "\r\n")
    rows = read_rows(path)
    assert [r["q"] for r in rows.rows] == [text, "b"]
    assert rows.where == ["rows.jsonl:1", "rows.jsonl:2"]


def test_reward_score_output_with_u2028_reads_back(tmp_path):
    """rltk's own `reward score` writes JSON with ensure_ascii=False; such a file must read back."""
    path = tmp_path / "scored.jsonl"
    path.write_text(json.dumps({"completion": "a\u2028b", "reward": 1.0}, ensure_ascii=False) + "\n")
    assert read_rows(path).rows == [{"completion": "a\u2028b", "reward": 1.0}]


def test_csv_quoted_newlines_are_kept_and_rows_named_by_their_first_line(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('question,answer\n"line one\nline two, with comma",1\nplain,2\n"a\n\nb",3\n')
    rows = read_rows(path)
    assert [r["question"] for r in rows.rows] == ["line one\nline two, with comma", "plain", "a\n\nb"]
    assert rows.where == ["rows.csv:2", "rows.csv:4", "rows.csv:5"]


def test_csv_bad_row_error_names_its_true_line(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('question,answer\n"multi\nline",1\nonly-one-field\n')
    with pytest.raises(UserError, match=r"rows.csv:4: expected 2 fields"):
        read_rows(path)


def test_csv_unterminated_quote_is_one_line_error(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('question,answer\n"never closed,1\n')
    with pytest.raises(UserError, match=r"rows.csv:2: "):  # the quote runs to the end of the file: one short record
        read_rows(path)


def test_unknown_format_lists_the_readable_ones(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("hello\n")
    with pytest.raises(UserError, match=r"rows\.txt: unknown data format \.txt \(use \.jsonl, \.json, \.tsv, \.csv, \.parquet or \.arrow\)"):
        read_rows(path)
