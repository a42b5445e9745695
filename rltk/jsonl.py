"""Strict JSONL reading shared by every user-facing reader (datasets, reward inputs).

>>> parse_jsonl(['{"a": 1}', '', '{"a": 2}'], "rows.jsonl")
[(1, {'a': 1}), (3, {'a': 2})]
>>> parse_jsonl(['{"a": 1}', '[1]'], "rows.jsonl")
Traceback (most recent call last):
...
rltk.errors.UserError: rows.jsonl:2: each line must be a JSON object, got list
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from rltk.errors import UserError


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


__all__ = ["parse_jsonl"]
