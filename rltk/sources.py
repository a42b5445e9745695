"""Generated training rows (``data.source: NAME``): a registry of sources, each ``fn(DataConfig) -> Rows``.

A family of sources registers one name and is asked for as ``NAME:ARG`` (the function reads ``cfg.source``);
``data.options`` carries a source's own settings.

>>> is_generated("arithmetic"), is_generated("rows.jsonl"), is_generated("hf:openai/gsm8k")
(True, False, False)
"""

from __future__ import annotations

from typing import Any

from evals.arithmetic import make_problems, worked_solution
from rltk.core.errors import UserError
from rltk.core.registry import Registry
from rltk.core.rows import Rows

SOURCES: Registry = Registry("data source")  # generated rows: name -> fn(DataConfig) -> Rows


def _family(source: str) -> str | None:
    head, sep, _ = source.partition(":")
    return head if sep and head in SOURCES and head != "hf" else None


def is_generated(source: str) -> bool:
    """True when ``source`` names a registered source (``NAME`` or ``NAME:ARG``), not a file or hub id."""
    return source in SOURCES or _family(source) is not None


def generated_rows(cfg: Any) -> Rows:
    """The rows of the registered source ``cfg.source`` names."""
    name = cfg.source if cfg.source in SOURCES else _family(cfg.source)
    return SOURCES.get(name)(cfg)


@SOURCES.register("arithmetic")
def arithmetic_rows(cfg: Any) -> Rows:
    """Generated arithmetic (:mod:`evals.arithmetic`): the train split never overlaps the held-out test split."""
    try:
        rows = make_problems(cfg.split, cfg.limit or 5000, seed=cfg.data_seed, ops=cfg.ops, digits=cfg.digits,
                             mul_digits=cfg.mul_digits)
    except ValueError as e:
        raise UserError(f"data: arithmetic: {e}") from e
    for r in rows:
        r["solution"] = worked_solution(r)
    where = [f"arithmetic[{cfg.split}][{i}]" for i in range(len(rows))]
    return Rows(rows, where, f"arithmetic:{cfg.split}:seed={cfg.data_seed}")


__all__ = ["SOURCES", "arithmetic_rows", "generated_rows", "is_generated"]
