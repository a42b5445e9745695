"""Calling one reward on a batch and checking what it returns: the value rules, the in-process
path, and the sandboxed path (one batch call; per-row calls in parallel when the batch call fails).

>>> check_value("1.0")
(None, "returned '1.0' (str), expected a number or None")
>>> check_value(True)
(None, 'returned True (bool), expected a number or None')
>>> check_value(float("inf"))
(None, 'returned a non-finite score inf')
>>> check_list([0.5, None, 2], 3)
([0.5, None, 2.0], [], None)
"""

from __future__ import annotations

import dataclasses
import decimal
import math
import numbers
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

from rewards.core import collect_failures
from rewards.sandbox import Outcome, SandboxPool, Target

SPECULATE_FLOOR_S = 1.0  # the batch call runs alone at least this long (unless timeout_s is shorter) ...
SPECULATE_SLACK = 4.0  # ... and at least this many times the reward's usual time for the batch


@dataclass
class CallState:
    """What one sandboxed reward has shown over its RewardSet's life (the breaker's memory)."""

    dead_calls: int = 0  # consecutive score() calls in which every call of the reward timed out
    row_s: float | None = None  # seconds per row its last answers took (None: none yet)
    disabled: bool = False
    told_batch: bool = False  # the "batch call failed, rows one by one" warning was given


@dataclass
class Ran:
    """One component on one batch: a value per sample, failures as ``(index, message)``, and how
    the reward's calls ended (for the breaker): ``timeouts`` and ``returned`` (a value or an error)."""

    values: list[float | None]
    errs: list[tuple[int, str]] = field(default_factory=list)
    timeouts: int = 0
    returned: int = 0
    batch_failed: str | None = None  # why the batch call's answer was not used

    @property
    def dead(self) -> bool:
        """Every call of the reward timed out (and there was at least one)."""
        return self.timeouts > 0 and self.returned == 0


def check_value(v: Any) -> tuple[float | None, str | None]:
    """A score is a finite number (bool excluded) or None; anything else is refused, not coerced."""
    if v is None:
        return None, None
    if isinstance(v, bool) or not isinstance(v, (numbers.Real, decimal.Decimal)):
        shown = repr(v)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return None, f"returned {shown} ({type(v).__name__}), expected a number or None"
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        return None, f"returned a non-finite score {f}"
    return f, None


def check_list(result: Any, n: int) -> tuple[list[float | None] | None, list[tuple[int, str]], str | None]:
    """``(values, per-sample errors, None)`` for a list of ``n``; ``(None, [], why)`` for anything else."""
    if not isinstance(result, (list, tuple)) or len(result) != n:
        got = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (list, tuple)) else "")
        hint = " (a reward factory? one that takes **kwargs is called as the reward itself)" if callable(result) else ""
        return None, [], f"returned {got}, expected a list of {n} scores{hint}"
    values: list[float | None] = []
    errs: list[tuple[int, str]] = []
    for i, v in enumerate(result):
        f, err = check_value(v)
        values.append(f)
        if err:
            errs.append((i, err))
    return values, errs, None


def portable_columns(columns: dict[str, Any]) -> dict[str, Any]:
    """The columns as a sandbox worker gets them: a ``trainer_state`` (a ``transformers.TrainerState``,
    whose unpickling would import torch in the worker, seconds taken from the reward's time limit)
    becomes a ``types.SimpleNamespace`` with the same attributes (``global_step``, ``max_steps``, ``epoch``...)."""
    state = columns.get("trainer_state")
    if state is None or isinstance(state, type) or not dataclasses.is_dataclass(state):
        return columns
    view = SimpleNamespace(**{f.name: getattr(state, f.name) for f in dataclasses.fields(state)})
    return {**columns, "trainer_state": view}


def sample_columns(columns: dict[str, Any], i: int, n: int) -> dict[str, Any]:
    """Batch columns of sample ``i`` alone: list columns of length ``n`` become one-item lists."""
    return {k: ([v[i]] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in columns.items()}


def _row_result(values: list[float | None] | None, errs: list[tuple[int, str]], whole: str | None) -> tuple[float | None, str | None]:
    if whole or errs:
        return None, whole or errs[0][1]
    return (values or [None])[0], None


def run_inline(fn: Callable, completions: list, columns: dict[str, Any]) -> Ran:
    """Call a bounded reward in-process; if the batch call raises or returns the wrong shape, call it
    per sample to isolate the culprit. Samples it reports (``report_failure``) are failures too."""
    n = len(completions)
    with collect_failures() as reported:
        try:
            values, errs, whole = check_list(fn(completions, **columns), n)
        except Exception as e:  # noqa: BLE001 - isolated below, per sample
            values, errs, whole = None, [], f"{type(e).__name__}: {e}"
    if values is not None:
        failed = dict(errs) | dict(reported)
        return Ran([None if i in failed else v for i, v in enumerate(values)], sorted(failed.items()))
    ran = Ran([None] * n)
    for i in range(n):
        with collect_failures() as rep:
            try:
                v, err = _row_result(*check_list(fn([completions[i]], **sample_columns(columns, i, n)), 1))
            except Exception as e:  # noqa: BLE001 - this sample's failure, counted by name
                v, err = None, f"{type(e).__name__}: {e}"
        if err or rep:
            ran.errs.append((i, err or rep[0][1]))
        else:
            ran.values[i] = v
    return ran


def _speculate_after(state: CallState, n: int, timeout_s: float) -> float:
    """How long the batch call runs alone before per-row calls start beside it."""
    if state.row_s is None:
        return timeout_s
    return min(timeout_s, max(SPECULATE_FLOOR_S, SPECULATE_SLACK * state.row_s * n))


def _valid_batch(f: Future, n: int) -> bool:
    if f.exception() is not None:
        return False
    o = f.result()[0]
    return o.ok and check_list(o.value, n)[0] is not None


def _add_rows(ran: Ran, rows: list[Outcome], state: CallState) -> Ran:
    for i, r in enumerate(rows):
        ran.timeouts += r.timed_out
        ran.returned += not r.timed_out
        v, err = _row_result(*check_list(r.value, 1)) if r.ok else (None, r.error or "failed")
        if err:
            ran.errs.append((i, err))
        else:
            ran.values[i] = v
    state.row_s = max((r.seconds for r in rows if r.ok), default=state.row_s)
    return ran


def run_sandboxed(pool: SandboxPool, target: Target, completions: list, columns: dict[str, Any],
                  timeout_s: float, batch_timeout_s: float, state: CallState) -> Ran:
    """One call of the reward on the whole batch, under ``batch_timeout_s``. If it fails (raises,
    crashes, does not return a list of ``len(completions)``), or has not answered after a few times
    the reward's usual time (see ``_speculate_after``), the rows are also called one by one, spread
    over the pool's other workers, each under ``timeout_s``; the first complete answer wins and the
    other calls are killed. So a hanging row costs about one ``timeout_s`` per call, and a batch that
    is merely slow still counts as a batch (a batch-relative reward keeps its meaning). Invalid
    values in a list of the right length fail only their samples."""
    n, columns = len(completions), portable_columns(columns)
    ran = Ran([None] * n)
    if n == 0:
        return ran
    if n == 1:  # the batch is the row
        return _add_rows(ran, pool.run(target, [((completions,), columns)], timeout_s), state)
    stop_batch, stop_rows, loaded = threading.Event(), threading.Event(), threading.Event()
    batch = pool.submit(target, [((completions,), columns)], batch_timeout_s, stop_batch, loaded)
    batch.add_done_callback(lambda f: stop_rows.set() if _valid_batch(f, n) else None)
    rows: list[Outcome] | None = None
    loaded.wait()  # a worker starting, or importing the reward's file, is not the batch being slow
    try:
        batch.result(timeout=_speculate_after(state, n, timeout_s))
    except FutureTimeout:
        pass
    if not (batch.done() and _valid_batch(batch, n)):
        items = [(([completions[i]],), sample_columns(columns, i, n)) for i in range(n)]
        rows = pool.run(target, items, timeout_s, chunk=1, cancel=stop_rows)
        stop_batch.set()
    o = batch.result()[0]
    ran.timeouts, ran.returned = int(o.timed_out), int(not (o.timed_out or o.cancelled))
    if _valid_batch(batch, n):
        ran.values, ran.errs, _ = check_list(o.value, n)
        state.row_s = o.seconds / max(1, n)
        return ran
    if o.cancelled:
        ran.batch_failed = f"no answer after {o.seconds:.1f} s, when its rows were done"
    else:
        ran.batch_failed = o.error or (check_list(o.value, n)[2] if o.ok else "failed")
    return _add_rows(ran, rows or [], state)
