"""Several rewards with weights and gates, scored safely: :class:`RewardSet`.

Each component is one :class:`RewardSpec` (a config's ``rewards:`` entry). The total is the
weighted sum of the applicable components; a component with ``gate`` counts only where the gate
component scored at least ``gate_threshold`` (e.g. correctness only when the format is valid: an
additive format reward is known to push up long wrong answers). Components are reported raw (the
gate changes the total, not the component's own score), so a user sees what each one measured.

Execution: built-in rewards bound their own work and run in-process; any other reward (a user's
``file.py:fn`` / ``module:fn``) runs per sample in sandbox worker processes under ``timeout_s``,
so a raising, hanging or crashing reward costs only its sample. A failed sample gets ``fallback``
(None by default: not applicable) and is counted in ``RewardScores.failures[label]`` with its
error in ``RewardScores.errors[label]`` — never a silent 0.0.

>>> rs = RewardSet([RewardSpec("math_answer", label="correct", gate="format"),
...                 RewardSpec("format_answer", weight=0.5, params={"style": "boxed"}, label="format")])
>>> s = rs.score([r"so \\boxed{4}", "so 4", r"\\boxed{5}"], answer=["4", "4", "4"])
>>> s.components["correct"], s.components["format"], s.total
([1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.5, 0.0, 0.5])
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from rewards.core import BuiltinReward, collect_failures, get_reward, required_columns
from rewards.sandbox import get_pool
from rltk.core.config import from_dict
from rltk.core.errors import UserError

log = logging.getLogger("rewards")


@dataclass(frozen=True)
class RewardSpec:
    """One component: a registry name or ``module:fn`` / ``file.py:fn``, its weight and knobs."""

    name: str
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    gate: str | None = None  # label of the component that must score >= gate_threshold
    gate_threshold: float = 1.0
    label: str | None = None  # report name (default: name)

    @property
    def key(self) -> str:
        return self.label or (self.name if isinstance(self.name, str) else getattr(self.name, "__name__", "reward"))


@dataclass
class RewardScores:
    total: list[float]  # weighted sum of applicable (gated) components; 0.0 where none applies
    components: dict[str, list[float | None]]  # per label, raw scores
    failures: dict[str, int]  # per label: exceptions + timeouts in this call
    seconds: dict[str, float]  # per label wall time
    errors: dict[str, list[str]] = field(default_factory=dict)  # per label: failure messages (first few)
    failed_samples: dict[str, list[int]] = field(default_factory=dict)  # per label: indices that failed


MAX_ERRORS_KEPT = 5


@dataclass
class _Component:
    spec: RewardSpec
    label: str
    fn: Callable
    target: tuple | None  # sandbox target; None = run in-process
    needs: set[str]


class RewardSet:
    """Weighted, gated rewards; ``score`` returns the total and every component.

    ``timeout_s``: limit per sample for rewards run in the sandbox (and per check in math_answer's
    own sandbox, unless its params set one); ``fallback``: score for a failed sample (None =
    not applicable); ``processes``: sandbox worker processes (0 = one, for isolation only).
    """

    def __init__(self, specs: Iterable[RewardSpec | dict[str, Any]], timeout_s: float = 5.0,
                 fallback: float | None = None, processes: int = 0):
        if timeout_s <= 0:
            raise UserError(f"reward timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self.fallback = fallback
        self.processes = max(1, int(processes))
        self._components: list[_Component] = []
        for i, s in enumerate(specs):
            spec = s if isinstance(s, RewardSpec) else from_dict(RewardSpec, dict(s), source=f"rewards[{i}]")
            self._components.append(self._build(spec))
        if not self._components:
            raise UserError("no rewards given")
        self.labels = [c.label for c in self._components]
        dup = {x for x in self.labels if self.labels.count(x) > 1}
        if dup:
            raise UserError(f"duplicate reward label(s) {', '.join(sorted(dup))}: give each a distinct 'label'")
        for c in self._components:
            g = c.spec.gate
            if g is not None and (g not in self.labels or g == c.label):
                raise UserError(f"reward '{c.label}': gate '{g}' must be the label of another reward (labels: {', '.join(self.labels)})")

    def _build(self, spec: RewardSpec) -> _Component:
        name = spec.name
        params = dict(spec.params)
        fn = get_reward(name, **params)
        inherited = {k: v for k, v in (("timeout_s", self.timeout_s), ("processes", self.processes))
                     if k in getattr(fn, "__dataclass_fields__", {}) and k not in params}
        if isinstance(fn, BuiltinReward) and inherited:  # math_answer's own sandbox follows the set's limits
            fn = get_reward(name, **params, **inherited)
        target: tuple | None = None
        if isinstance(fn, BuiltinReward) and fn.bounded:
            target = None
        elif isinstance(name, str):
            ref = name
            if ":" in name and name.rpartition(":")[0].endswith(".py"):  # the worker may not share our cwd
                path, _, attr = name.rpartition(":")
                ref = f"{Path(path).expanduser().resolve()}:{attr}"
            target = ("reward", ref, params)
        else:
            target = _pickled_target(fn)
        return _Component(spec, spec.key, fn, target, required_columns(fn))

    # --- columns -----------------------------------------------------------------------------

    def required_columns(self) -> set[str]:
        return set().union(*(c.needs for c in self._components))

    def check_columns(self, columns: Iterable[str], where: str) -> None:
        """UserError naming the reward and the first column the data lacks."""
        have = set(columns)
        if "prompt" in have:
            have.add("prompts")
        for c in self._components:
            missing = sorted(c.needs - have)
            if missing:
                raise UserError(f"{where}: reward '{c.label}' needs column '{missing[0]}', which the data lacks "
                                f"(columns: {', '.join(sorted(have)) or 'none'})")

    # --- scoring -----------------------------------------------------------------------------

    def score(self, completions: list, **columns: Any) -> RewardScores:
        n = len(completions)
        for k, v in columns.items():
            if isinstance(v, (list, tuple)) and len(v) != n:
                raise ValueError(f"column '{k}' has {len(v)} values for {n} completions")
        if "prompts" not in columns and "prompt" in columns:
            columns = {**columns, "prompts": columns["prompt"]}
        self.check_columns(columns, "score")
        comps: dict[str, list[float | None]] = {}
        failures: dict[str, int] = {}
        seconds: dict[str, float] = {}
        errors: dict[str, list[str]] = {}
        failed_samples: dict[str, list[int]] = {}
        for c in self._components:
            t0 = time.perf_counter()
            values, errs = self._run(c, completions, columns)
            seconds[c.label] = time.perf_counter() - t0
            failures[c.label] = len(errs)
            errors[c.label] = [f"sample {i}: {msg}" for i, msg in errs[:MAX_ERRORS_KEPT]]
            failed_samples[c.label] = [i for i, _ in errs]
            if errs:
                log.warning("reward '%s' failed on %d of %d samples (first: sample %d: %s)",
                            c.label, len(errs), n, errs[0][0], errs[0][1])
            if self.fallback is not None:
                failed = {i for i, _ in errs}
                values = [self.fallback if i in failed else v for i, v in enumerate(values)]
            comps[c.label] = values
        total = []
        for i in range(n):
            t, any_applicable = 0.0, False
            for c in self._components:
                v = comps[c.label][i]
                if v is None:
                    continue
                if c.spec.gate is not None:
                    g = comps[c.spec.gate][i]
                    if g is None or g < c.spec.gate_threshold:
                        v = 0.0
                t += c.spec.weight * v
                any_applicable = True
            total.append(t if any_applicable else 0.0)
        return RewardScores(total, comps, failures, seconds, errors, failed_samples)

    def _run(self, c: _Component, completions: list, columns: dict[str, Any]) -> tuple[list[float | None], list[tuple[int, str]]]:
        n = len(completions)
        if c.target is None:
            return _run_inline(c.fn, completions, columns)
        items = [(([completions[i]],), _sample_columns(columns, i, n)) for i in range(n)]
        outcomes = get_pool("user", self.processes).run(c.target, items, self.timeout_s)
        values: list[float | None] = []
        errs: list[tuple[int, str]] = []
        for i, o in enumerate(outcomes):
            if not o.ok:
                values.append(None)
                errs.append((i, o.error or "failed"))
                continue
            v, err = _check_value(o.value, expect=1)
            values.append(v[0] if v else None)
            if err:
                errs.append((i, err))
        return values, errs


def _sample_columns(columns: dict[str, Any], i: int, n: int) -> dict[str, Any]:
    """Batch columns of sample ``i`` alone: list columns of length ``n`` become one-item lists."""
    return {k: ([v[i]] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in columns.items()}


def _check_value(result: Any, expect: int) -> tuple[list[float | None] | None, str | None]:
    """Validate a reward's return: a list of ``expect`` numbers or None (NaN/inf are failures)."""
    if not isinstance(result, (list, tuple)) or len(result) != expect:
        got = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, (list, tuple)) else "")
        return None, f"returned {got}, expected a list of {expect} scores"
    out: list[float | None] = []
    for v in result:
        if v is None:
            out.append(None)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None, f"returned a non-numeric score {v!r}"
        if not math.isfinite(f):
            return None, f"returned a non-finite score {f}"
        out.append(f)
    return out, None


def _run_inline(fn: Callable, completions: list, columns: dict[str, Any]) -> tuple[list[float | None], list[tuple[int, str]]]:
    """Call a bounded reward in-process; if the batch raises, retry per sample to isolate the culprit."""
    n = len(completions)
    with collect_failures() as reported:
        try:
            values, err = _check_value(fn(completions, **columns), expect=n)
        except Exception as e:  # noqa: BLE001 - isolated below, per sample
            values, err = None, f"{type(e).__name__}: {e}"
    if values is not None:
        failed = dict(reported)
        return [None if i in failed else v for i, v in enumerate(values)], sorted(failed.items())
    values, errs = [], []
    for i in range(n):
        row = _sample_columns(columns, i, n)
        with collect_failures() as rep:
            try:
                v, e1 = _check_value(fn([completions[i]], **row), expect=1)
            except Exception as e:  # noqa: BLE001 - this sample's failure, counted by name
                v, e1 = None, f"{type(e).__name__}: {e}"
        if v is None or rep:
            values.append(None)
            errs.append((i, e1 or rep[0][1]))
        else:
            values.append(v[0])
    return values, errs


def _pickled_target(fn: Callable) -> tuple | None:
    qual = getattr(fn, "__qualname__", "")
    if getattr(fn, "__module__", "__main__") == "__main__" or "<" in qual:
        log.warning("reward %r cannot be sent to a sandbox worker (defined in __main__ or a closure): it runs "
                    "in-process with exceptions isolated but no hard time limit; give it as module:fn or file.py:fn", fn)
        return None
    try:
        return ("pickled", pickle.dumps(fn))
    except Exception:  # noqa: BLE001
        return None
