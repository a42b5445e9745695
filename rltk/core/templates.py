"""``{column}`` templates over row fields: the one parser and the one filler.

>>> template_fields("Compute {question} ({unit})", "data.prompt")
['question', 'unit']
>>> fill("Compute {question}", {"question": "2 + 2"}, "rows.jsonl:3")
'Compute 2 + 2'
>>> fill("Compute {question}", {}, "rows.jsonl:3")
Traceback (most recent call last):
...
rltk.core.errors.UserError: rows.jsonl:3: row lacks field 'question' (the template uses {question}; row has no fields)
>>> fill("{a}|{b}", {"a": None, "b": 1}, none_as_empty=True)
'|1'
"""

from __future__ import annotations

import string
from typing import Any

from rltk.core.errors import UserError


class TemplateError(UserError, ValueError):
    """A broken template: a :class:`UserError` for the CLI, a ``ValueError`` for config validation."""


def template_fields(template: str, where: str) -> list[str]:
    """Row fields a ``{field}`` template uses (``{{`` escapes a brace); only plain names, no format
    spec or conversion. :class:`TemplateError` naming ``where`` on a broken template."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise TemplateError(f"{where}: broken template {template!r}: {e}") from None
    out = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(f"{where}: template fields must be plain names like {{question}}, got {{{name}}}")
        if spec or conv:
            raise TemplateError(f"{where}: template field {{{name}}} may not carry a format spec or conversion")
        out.append(name)
    return out


def fill(template: str, row: dict[str, Any], where: str | None = None, none_as_empty: bool = False) -> str:
    """``template`` with each ``{field}`` taken from ``row``. A missing field is a :class:`UserError`
    naming ``where`` (the row's ``file:line``); ``none_as_empty`` writes null fields as ``""``."""
    values = {k: ("" if v is None else v) for k, v in row.items()} if none_as_empty else row
    try:
        return template.format_map(_Row(values, where or "row"))
    except (IndexError, AttributeError, ValueError) as e:
        raise UserError(f"{where or 'row'}: cannot fill template {template!r}: {e}") from None


class _Row(dict):
    def __init__(self, row: dict[str, Any], where: str):
        super().__init__(row)
        self.where = where

    def __missing__(self, key: str) -> Any:
        raise UserError(f"{self.where}: row lacks field '{key}' (the template uses {{{key}}}; "
                        f"row has {', '.join(sorted(self)) or 'no fields'})")


__all__ = ["TemplateError", "fill", "template_fields"]
