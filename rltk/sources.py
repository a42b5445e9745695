"""Generated training rows (``data.source: NAME``): a registry of sources, each ``fn(DataConfig) -> Rows``.

A family of sources registers one name and is asked for as ``NAME:ARG`` (the function reads ``cfg.source``);
``data.options`` carries a source's own settings.

>>> is_generated("arithmetic"), is_generated("rows.jsonl"), is_generated("hf:openai/gsm8k")
(True, False, False)
"""

from __future__ import annotations

from typing import Any

from evals.arithmetic import make_problems, worked_solution
from evals.gym import gym_source
from evals.word_problems import MAX_NUMBER, make_word_problems
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


WORD_OPTIONS = ("steps", "templates", "max_number")  # data.options of the word_problems source


@SOURCES.register("word_problems")
def word_problem_rows(cfg: Any) -> Rows:
    """Generated multi-step word problems (:mod:`evals.word_problems`) with their worked solutions (the SFT
    target ``solution``); the train split never overlaps the eval task's test split. ``data.options``:
    ``steps`` (3 or "2-4", default "2-4"), ``templates`` (a list of family names, default all) and ``max_number``
    (the largest number in a problem, default 9999)."""
    options = dict(cfg.options or {})
    unknown = sorted(set(options) - set(WORD_OPTIONS))
    if unknown:
        raise UserError(f"data.options: unknown key '{unknown[0]}' for word_problems (known: {', '.join(WORD_OPTIONS)})")
    templates = options.get("templates")
    if isinstance(templates, str):
        templates = [templates]
    try:
        rows = make_word_problems(cfg.split, cfg.limit or 5000, seed=cfg.data_seed, steps=options.get("steps", (2, 4)),
                                  templates=templates, max_number=options.get("max_number", MAX_NUMBER))
    except ValueError as e:
        raise UserError(f"data: word_problems: {e}") from e
    where = [f"word_problems[{cfg.split}][{i}]" for i in range(len(rows))]
    return Rows(rows, where, f"word_problems:{cfg.split}:seed={cfg.data_seed}")


@SOURCES.register("gym")
def gym_rows_source(cfg: Any) -> Rows:
    """reasoning-gym procedural tasks: ``data.source: gym:NAME``, ``data.options`` = the dataset's config,
    ``limit`` rows (default 5000) of ``split`` with ``data_seed`` (optional extra: pip install 'rltk[gym]')."""
    return gym_source(cfg)


__all__ = ["gym_rows_source", "SOURCES", "WORD_OPTIONS", "arithmetic_rows", "generated_rows", "is_generated", "word_problem_rows"]
