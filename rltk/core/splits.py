"""Train / held-out splits by group (a document, a service, an author), never by row.

Rows of one document share its clauses, names and wording: a split by row puts near-copies of a test
passage in training and measures memory, not skill. :func:`split_by_group` assigns whole groups, by a
hash of the group's key (so a row's side never depends on the order, the seed or the other rows), and
checks on every load that no group sits on both sides.

>>> rows = Rows([{"doc": d, "i": i} for i, d in enumerate("aabbbcdde")], [f"f:{i}" for i in range(9)], "f")
>>> train, test = (split_by_group(rows, ["doc"], s, 0.4) for s in ("train", "test"))
>>> len(train) + len(test), sorted({r["doc"] for r in train.rows} & {r["doc"] for r in test.rows})
(9, [])
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from rltk.core.errors import UserError
from rltk.core.rows import Rows

SPLITS = ("train", "test")


def group_key(row: dict[str, Any], columns: Sequence[str]) -> str:
    """The group a row belongs to: its values of ``columns``, joined (a missing column counts as empty)."""
    return "\x1f".join(" ".join(str(row.get(c) if row.get(c) is not None else "").split()).lower() for c in columns)


def held_out_share(key: str, salt: str = "") -> float:
    """Where ``key`` falls in [0, 1): a group is held out when this is below the test fraction."""
    digest = hashlib.sha256(f"{salt}\x1e{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_by_group(rows: Rows, columns: Sequence[str], split: str, test_fraction: float = 0.2, salt: str = "") -> Rows:
    """The rows of ``split`` ("train" or "test"): every group whose key hashes below ``test_fraction`` is
    held out whole. UserError for an unknown split or column, or a side left empty."""
    if split not in SPLITS:
        raise UserError(f"split must be one of {', '.join(SPLITS)} when splitting by group, got {split!r}")
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must be in (0, 1), got {test_fraction}")
    columns = list(columns)
    if not columns:
        raise UserError("split_by needs at least one column")
    if rows.rows and not any(c in rows.rows[0] for c in columns):
        raise UserError(f"{rows.where[0]}: split_by columns {columns} are not in the rows (columns: {sorted(rows.rows[0])[:12]})")
    keys = [group_key(r, columns) for r in rows.rows]
    held = {k: held_out_share(k, salt) < test_fraction for k in set(keys)}
    side = [i for i, k in enumerate(keys) if held[k] == (split == "test")]
    check_disjoint([keys[i] for i in range(len(keys)) if held[keys[i]]],
                   [keys[i] for i in range(len(keys)) if not held[keys[i]]], columns)
    if not side:
        raise UserError(f"{rows.source}: the {split} side of the split by {columns} (test fraction {test_fraction}) "
                        f"is empty ({len(held)} groups)")
    out = rows.select(side)
    out.extra = {**out.extra, "split": {"by": columns, "side": split, "test_fraction": test_fraction,
                                        "groups": len({keys[i] for i in side}), "groups_total": len(held)}}
    return out


def check_disjoint(test_keys: Sequence[str], train_keys: Sequence[str], columns: Sequence[str]) -> None:
    """UserError naming a group found on both sides (the assertion every split load makes)."""
    both = sorted(set(test_keys) & set(train_keys))
    if both:
        raise UserError(f"split by {list(columns)}: group {both[0]!r} is in both train and test ({len(both)} groups)")
