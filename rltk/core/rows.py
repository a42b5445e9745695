"""Rows and their readers: local files or the HF hub, each row remembering where it came from.

Every row carries its location so a row that lacks a field is reported by name. Formats:

* JSON Lines (``.jsonl``), a JSON list or mapping of objects (``.json``), and tab- or comma-separated
  files with a header line (``.tsv``, ``.csv``): parsed with the standard library's ``json`` and ``csv``
  modules, rows named ``file:line`` by the true line a record starts on (JSONL is split on ``\\n`` only,
  so U+2028 inside a string stays; a CSV field may hold quoted newlines; TSV is read unquoted, as
  LegalBench writes it). ``datasets`` reads these formats too, but it keeps no line numbers.
* Parquet (``.parquet``), Arrow (``.arrow``) and a folder written by ``Dataset.save_to_disk``: read
  by the ``datasets`` package (the first two streamed, so no cache copy is made), rows named
  ``file:row N`` (N from 1: these formats have no lines).
* ``load_hub_rows``: a hub dataset through ``datasets.load_dataset``, rows named ``hub-id[split][i]``.

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
import glob
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
    """Rows of a local ``.jsonl``, ``.json``, ``.tsv``, ``.csv``, ``.parquet`` or ``.arrow`` file, or of a
    ``save_to_disk`` folder; UserError naming file and line (or row) on bad input."""
    p = Path(path).expanduser()
    if p.is_dir():
        return _saved_rows(p)
    if not p.is_file():
        raise UserError(f"data file not found: {path}")
    suffix = p.suffix.lower()
    if suffix in DATASETS_FORMATS:
        return _datasets_rows(p, DATASETS_FORMATS[suffix])
    readers = {".jsonl": _jsonl_rows, ".json": _json_rows, ".tsv": _delimited_rows, ".csv": _delimited_rows}
    if suffix not in readers:
        raise UserError(f"{p.name}: unknown data format {suffix or '(no extension)'} "
                        "(use .jsonl, .json, .tsv, .csv, .parquet or .arrow)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p.name}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    rows, where = readers[suffix](text, p.name, suffix)
    return Rows(rows, where, str(p))


DATASETS_FORMATS = {".parquet": "parquet", ".arrow": "arrow"}  # suffix -> the ``datasets`` builder that reads it


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def _datasets_rows(p: Path, builder: str) -> Rows:
    """A parquet or arrow file through ``datasets`` (streamed: rows are read, no cache copy is written)."""
    import datasets

    try:
        # data_files are glob patterns: escape the path's own [, *, ?
        stream = datasets.load_dataset(builder, data_files=glob.escape(str(p)), split="train", streaming=True)
        rows = [dict(r) for r in stream]
    except Exception as e:  # pyarrow's ArrowInvalid, datasets' errors: a file that is not what its name says
        raise UserError(f"{p.name}: cannot read as {builder}: {_first_line(e)}") from e
    return Rows(rows, [f"{p.name}:row {i}" for i in range(1, len(rows) + 1)], str(p))


def _saved_rows(p: Path) -> Rows:
    """A folder written by ``datasets.Dataset.save_to_disk`` (one split)."""
    import datasets

    if not (p / "state.json").is_file() and not (p / "dataset_dict.json").is_file():
        raise UserError(f"{p.name}: a folder, not a data file (a datasets save_to_disk folder holds state.json)")
    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as e:
        raise UserError(f"{p.name}: cannot read the saved dataset: {_first_line(e)}") from e
    if isinstance(ds, datasets.DatasetDict):
        raise UserError(f"{p.name}: holds the splits {', '.join(ds)}; use one split's folder, e.g. {p / next(iter(ds))}")
    rows = [dict(r) for r in ds]
    return Rows(rows, [f"{p.name}:row {i}" for i in range(1, len(rows) + 1)], str(p))


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
        raise UserError(
            f"cannot load hub dataset {hub_id!r} (split {split}): {_first_line(e)}; "
            "offline? pass --data PATH with a local JSONL copy"
        ) from e
    rows = [dict(r) for r in ds]
    return Rows(rows, [f"{hub_id}[{split}][{i}]" for i in range(len(rows))], f"hub:{hub_id}:{split}")
