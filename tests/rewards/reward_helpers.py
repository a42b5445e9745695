"""Importable helpers that sandbox workers load in tests (workers see the parent's sys.path)."""

from __future__ import annotations

import time


def slow_symbolic_check(gold: str, pred: str, rounding: bool = True) -> bool:
    """Stands in for rewards.math.check_symbolic: hangs on 'sqrt', answers otherwise."""
    if "sqrt" in pred:
        time.sleep(60)
    return pred.strip() == gold.strip()
