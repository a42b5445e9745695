"""Rows and their readers: local files or the HF hub, each row remembering where it came from.

Every row carries its location (``file:line``) so a row that lacks a field is reported
by name. Formats: JSON Lines (``.jsonl``), a JSON list or mapping of objects (``.json``),
and tab- or comma-separated files with a header line (``.tsv``, ``.csv``).

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "rows.jsonl")
>>> _ = open(path, "w").write('{"question": "1+1?", "answer": "2"}\\n{"question": "2+2?"}\\n')
>>> rows = read_rows(path)
>>> rows.rows[0]["answer"], rows.where[1]
('2', 'rows.jsonl:2')
>>> rows.require(["question", "answer"], "task demo needs question, answer")
Traceback (most recent call last):
...
rltk.core.errors.UserError: rows.jsonl:2: row lacks field 'answer' (task demo needs question, answer)
>>> parse_jsonl(['{"a": 1}', '', '{"a": 2}'], "rows.jsonl")
[(1, {'a': 1}), (3, {'a': 2})]
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from rltk.core.errors import UserError


def parse_jsonl(lines: Iterable[str], name: str) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each non-blank line; a line that is not a JSON object is a
    :class:`UserError` naming ``name`` and the line (the first such line: nothing is half-read)."""
    rows = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{name}:{n}: invalid JSON: {e.msg} (column {e.colno})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{name}:{n}: each line must be a JSON object, got {type(obj).__name__}")
        rows.append((n, obj))
    return rows


@dataclass
class Rows:
    """Task rows plus, for each, where it came from (``file:line`` or ``hub-id[split][i]``)."""

    rows: list[dict[str, Any]]
    where: list[str]
    source: str  # the file or hub id, for the run's config
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    def require(self, fields: Iterable[str], why: str) -> None:
        """UserError naming the first row (file and line) that lacks one of ``fields`` or has it null;
        ``why`` says who needs them (e.g. ``"task gsm8k needs question, answer"``)."""
        fields = list(dict.fromkeys(fields))
        for row, where in zip(self.rows, self.where):
            for f in fields:
                if f not in row or row[f] is None:
                    raise UserError(f"{where}: row lacks field {f!r} ({why})")

    def select(self, indices: Sequence[int]) -> "Rows":
        return Rows([self.rows[i] for i in indices], [self.where[i] for i in indices], self.source, dict(self.extra))


def read_rows(path: str | Path) -> Rows:
    """Rows of a local ``.jsonl``, ``.json``, ``.tsv`` or ``.csv`` file; UserError naming file and line on bad input."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"data file not found: {path}")
    suffix = p.suffix.lower()
    readers = {".jsonl": _jsonl_rows, ".json": _json_rows, ".tsv": _delimited_rows, ".csv": _delimited_rows}
    if suffix not in readers:
        raise UserError(f"{p.name}: unknown data format {suffix or '(no extension)'} (use .jsonl, .json, .tsv or .csv)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p.name}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    rows, where = readers[suffix](text, p.name, suffix)
    return Rows(rows, where, str(p))


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSONL text: split on ``\n`` only (JSON strings may hold U+2028, U+2029 and other
    characters that ``str.splitlines`` would also split on).

    >>> len(jsonl_lines('{"a": "x' + chr(0x2028) + 'y"}' + chr(10) + '{"a": 2}'))
    2
    """
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _jsonl_rows(text: str, name: str, suffix: str) -> tuple[list[dict[str, Any]], list[str]]:
    parsed = parse_jsonl(jsonl_lines(text), name)
    return [obj for _, obj in parsed], [f"{name}:{n}" for n, _ in parsed]


def _json_rows(text: str, name: str, suffix: str) -> tuple[list[dict[str, Any]], list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{name}:{e.lineno}: invalid JSON: {e.msg}") from e
    if isinstance(data, dict):  # {key: record} (e.g. plain_english_contracts' all_v1.json)
        items = list(data.items())
    elif isinstance(data, list):
        items = [(f"[{i}]", v) for i, v in enumerate(data)]
    else:
        raise UserError(f"{name}: top level must be a list or a mapping of objects, got {type(data).__name__}")
    rows, where = [], []
    for key, obj in items:
        loc = f"{name}:{key}" if key.startswith("[") else f"{name}:{key!r}"
        if not isinstance(obj, dict):
            raise UserError(f"{loc}: each record must be a JSON object, got {type(obj).__name__}")
        rows.append(obj)
        where.append(loc)
    return rows, where


def _delimited_rows(text: str, name: str, suffix: str) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV (quoted fields may hold newlines and delimiters) or TSV (no quoting: LegalBench's TSV files have
    literal quotes in their text). Each row is named by the line its record starts on."""
    if not text.strip():
        raise UserError(f"{name}: empty file (a header line is needed)")
    quoting = csv.QUOTE_NONE if suffix == ".tsv" else csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",", quoting=quoting)
    header = [h.strip() for h in next(reader)]
    if len(set(header)) != len(header) or not all(header):
        raise UserError(f"{name}:1: header must name each column once, got {header}")
    rows, where = [], []
    start = reader.line_num + 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise UserError(f"{name}:{line}: expected {len(header)} fields ({', '.join(header)}), got {len(cells)}")
            rows.append(dict(zip(header, cells)))
            where.append(f"{name}:{line}")
    except csv.Error as e:  # e.g. a quoted field that never ends
        raise UserError(f"{name}:{start}: malformed {suffix[1:].upper()}: {e}") from None
    return rows, where


def load_hub_rows(hub_id: str, split: str, config: str | None = None) -> Rows:
    """Rows of a hub dataset through ``datasets.load_dataset`` (for users online). Offline, or with
    an unknown id, the error says to pass ``--data`` with a local copy."""
    try:
        import datasets

        ds = datasets.load_dataset(hub_id, config, split=split) if config else datasets.load_dataset(hub_id, split=split)
    except Exception as e:  # network, auth, unknown id: all the same advice
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"cannot load hub dataset {hub_id!r} (split {split}): {first[:200]}; "
            "offline? pass --data PATH with a local JSONL copy"
        ) from e
    rows = [dict(r) for r in ds]
    return Rows(rows, [f"{hub_id}[{split}][{i}]" for i in range(len(rows))], f"hub:{hub_id}:{split}")
