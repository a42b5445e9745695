"""Rows from a reasoning-gym procedural dataset (optional peer, ``pip install 'rltk[gym]'``): a name and
its config in, :class:`~rltk.core.rows.Rows` out, the train and held-out splits kept apart.

What reasoning-gym guarantees: entry ``i`` of a dataset built with ``seed`` is drawn from
``random.Random(seed + i)`` (prefix-stable, deterministic), and nothing more — two seeds give
overlapping entries when their ranges ``[seed, seed + size)`` meet, and a small problem space (e.g.
``prime_factorization``, ``lcm``) repeats questions whatever the seeds. So :func:`split_seed` gives
each (seed, split) its own range, and a held-out split drops every question that the train split of
the same ``n`` and seed holds, drawing further entries to refill, then asserts none is left.

>>> split_seed("train", 0), split_seed("validation", 0), split_seed("test", 0), split_seed("train", 1)
(0, 16777216, 33554432, 50331648)
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

from rewards.gym import reasoning_gym
from rltk.core.errors import UserError
from rltk.core.rows import Rows

SPLITS = ("train", "validation", "test")
SEED_STRIDE = 2 ** 24  # entries per (seed, split) range: ranges never meet while size <= this
REFILL = (2, 8)  # held-out splits draw n * these entries, in turn, to replace questions train holds
RESERVED = {"seed": "seed", "size": "n"}  # config keys gym_rows sets itself


def split_seed(split: str, seed: int = 0) -> int:
    """The reasoning-gym seed of ``split``: ranges of :data:`SEED_STRIDE` entries, one per (seed, split)."""
    if split not in SPLITS:
        raise UserError(f"reasoning-gym split {split!r}: use one of {', '.join(SPLITS)}")
    if seed < 0:
        raise UserError(f"reasoning-gym seed must be >= 0, got {seed}")
    return (seed * len(SPLITS) + SPLITS.index(split)) * SEED_STRIDE


def dataset_names() -> list[str]:
    """The names of reasoning-gym's registered datasets."""
    return sorted(reasoning_gym("reasoning-gym data").factory.DATASETS)


def check_dataset(name: str, config: dict[str, Any]) -> None:
    """UserError for an unknown dataset (naming close ones) or a config key its config class lacks."""
    datasets = reasoning_gym(f"reasoning-gym dataset {name!r}").factory.DATASETS
    if name not in datasets:
        close = difflib.get_close_matches(name, list(datasets), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"{len(datasets)} known, e.g. {', '.join(sorted(datasets)[:6])}"
        raise UserError(f"unknown reasoning-gym dataset {name!r} ({hint})")
    for key in config:
        if key in RESERVED:
            raise UserError(f"reasoning-gym {name}: config key {key!r} is set by rltk: give {RESERVED[key]} instead")
    fields = [f.name for f in dataclasses.fields(datasets[name][1]) if f.name not in RESERVED]
    for key in config:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=2)
            hint = f"did you mean {', '.join(close)}?" if close else f"keys: {', '.join(fields)}"
            raise UserError(f"reasoning-gym {name}: unknown config key {key!r} ({hint})")


def _exact_text(value: Any) -> str:
    """JSON for the exact numbers reasoning-gym puts in metadata (``Fraction(1, 4)`` -> ``"1/4"``)."""
    if isinstance(value, (Fraction, Decimal)):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _entries(name: str, seed: int, size: int, config: dict[str, Any]) -> list[dict[str, Any]]:
    """``size`` entries made JSON-safe (the scorer gets them back from any row file)."""
    rg = reasoning_gym(f"reasoning-gym dataset {name!r}")
    try:
        ds = rg.create_dataset(name, size=size, seed=seed, **config)
    except (AssertionError, ValueError, TypeError) as e:
        raise UserError(f"reasoning-gym {name}: bad config {config}: {e or type(e).__name__}") from None
    try:
        return [json.loads(json.dumps(ds[i], default=_exact_text)) for i in range(size)]
    except TypeError as e:
        raise UserError(f"reasoning-gym {name}: entries are not JSON-serialisable ({e}); not supported") from None


def _held_out(name: str, split: str, n: int, seed: int, config: dict[str, Any]) -> tuple[list[dict[str, Any]], int, set[str]]:
    """``n`` entries of ``split`` whose questions the train split of the same ``n`` lacks, how many
    were dropped for being there, and the train questions."""
    train = {e["question"] for e in _entries(name, split_seed("train", seed), n, config)}
    for factor in REFILL:
        kept: list[dict[str, Any]] = []
        dropped = 0
        for e in _entries(name, split_seed(split, seed), n * factor, config):
            if len(kept) == n:
                break
            if e["question"] in train:
                dropped += 1
            else:
                kept.append(e)
        if len(kept) == n:
            return kept, dropped, train
    raise UserError(f"reasoning-gym {name}: too few distinct problems for {n} {split} rows apart from the "
                    f"{n} train rows (found {len(kept)} in {n * REFILL[-1]} draws): lower n or widen the config")


def gym_rows(dataset: str, split: str, n: int, seed: int = 0, **config: Any) -> Rows:
    """``n`` rows of the reasoning-gym ``dataset`` (built with ``config``): ``question``, ``answer``
    (str), ``gym_dataset``, ``gym_entry`` (the whole entry, metadata included: the scorer reads it),
    ``gym_config`` and ``id``. A ``validation`` or ``test`` split never repeats a question of the
    ``train`` split of the same ``n`` and ``seed`` (see the module docstring)."""
    if n < 1 or n * REFILL[-1] > SEED_STRIDE:
        raise UserError(f"reasoning-gym {dataset}: n must be in 1..{SEED_STRIDE // REFILL[-1]}, got {n}")
    check_dataset(dataset, config)
    base = split_seed(split, seed)
    if split == "train":
        entries, dropped = _entries(dataset, base, n, config), 0
    else:
        entries, dropped, train = _held_out(dataset, split, n, seed, config)
        leaked = [e["question"] for e in entries if e["question"] in train]
        assert not leaked, f"train questions in the {split} split: {leaked[:3]}"
    rows = [{"question": str(e["question"]), "answer": str(e["answer"]), "gym_dataset": dataset, "gym_entry": e,
             "gym_config": dict(config), "id": f"gym:{dataset}:{split}:s{seed}:{i:05d}"} for i, e in enumerate(entries)]
    where = [f"gym:{dataset}[{split}][{i}]" for i in range(len(rows))]
    extra = {"gym": {"dataset": dataset, "split": split, "seed": seed, "split_seed": base, "config": dict(config),
                     "dropped_train_overlap": dropped}}
    return Rows(rows, where, f"gym:{dataset}:{split}:seed={seed}", extra)


def gym_source(cfg: Any) -> Rows:
    """Training rows for ``data.source: gym:NAME`` (``cfg`` a ``DataConfig``: ``options`` is the
    dataset's config, ``limit`` the row count, default 5000, ``split``, ``data_seed``). Rows get a
    ``solution`` (``#### answer``) so SFT has a target."""
    _, _, name = str(cfg.source).partition(":")
    if not name:
        raise UserError("data.source: gym needs a reasoning-gym dataset name, e.g. gym:chain_sum")
    rows = gym_rows(name, cfg.split, cfg.limit or 5000, seed=cfg.data_seed, **dict(cfg.options or {}))
    for r in rows.rows:
        r.setdefault("solution", f"#### {r['answer']}")
    return rows


__all__ = ["SPLITS", "check_dataset", "dataset_names", "gym_rows", "gym_source", "split_seed"]
