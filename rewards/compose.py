"""Several rewards with weights and gates, scored safely: :class:`RewardSet`.

Each component is one :class:`RewardSpec` (a config's ``rewards:`` entry). The total is the
weighted sum of the applicable components; a component with ``gate`` counts only where the gate
component scored at least ``gate_threshold`` (e.g. correctness only when the format is valid: an
additive format reward is known to push up long wrong answers). Components are reported raw (the
gate changes the total, not the component's own score), so a user sees what each one measured.

Execution: built-in rewards bound their own work and run in-process; any other reward (a user's
``file.py:fn`` / ``module:fn``) runs in sandbox worker processes: once per batch under
``batch_timeout_s``, and when that call fails or is much slower than usual, once per row as well, in
parallel over the other workers, each row under ``timeout_s`` (:func:`rewards.calls.run_sandboxed`)
— so a raising, hanging or crashing reward costs only its samples, and a hanging row about one
``timeout_s`` per call. A failed sample (the reward raised, timed out, crashed, or
returned something that is not a finite number or None) gets ``fallback`` (None by default: not
applicable), is counted in ``RewardScores.failures[label]`` with its error in
``RewardScores.errors[label]``, and — without a fallback — is marked in ``RewardScores.failed``:
its total is not a measurement and must not be trained on. Never a silent 0.0.

A reward that times out on every call in ``breaker_after`` consecutive ``score`` calls is dead:
``on_breaker="stop"`` (default) raises a UserError naming it; ``"disable"`` logs an error once and
scores it None (not a failure) from then on, listed in ``RewardScores.disabled``.

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

from rewards.calls import CallState, Ran, run_inline, run_sandboxed
from rewards.core import BuiltinReward, collect_details, get_reward, required_columns
from rewards.sandbox import Isolation, close_pool, get_pool
from rltk.core.config import from_dict
from rltk.core.errors import UserError

log = logging.getLogger("rewards")


@dataclass(frozen=True)
class RewardSpec:
    """One component: a registry name or ``module:fn`` / ``file.py:fn``, its weight and knobs.

    ``params``: a built-in's settings; for a function, keyword arguments bound to it — or, when it is
    a reward factory (no ``completions``/``prompts``/``completion_ids`` parameter and no ``**kwargs``,
    e.g. ``trl.rewards:get_soft_overlong_punishment``), the arguments it is called with once to make
    the reward (:func:`rewards.core.is_factory`)."""

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
    """What ``RewardSet.score`` measured. ``failed[i]``: a component failed on sample ``i`` and no
    ``fallback`` was set — ``total[i]`` (computed as if that component did not apply) is then not a
    measurement: do not train on it. Built by hand without ``failed``, it is derived from
    ``failed_samples`` (as if without a fallback)."""

    total: list[float]  # weighted sum of applicable (gated) components; 0.0 where none applies
    components: dict[str, list[float | None]]  # per label, raw scores
    failures: dict[str, int]  # per label: exceptions + timeouts + invalid values in this call
    seconds: dict[str, float]  # per label wall time
    errors: dict[str, list[str]] = field(default_factory=dict)  # per label: failure messages (first few)
    failed_samples: dict[str, list[int]] = field(default_factory=dict)  # per label: indices that failed
    failed: list[bool] = field(default_factory=list)  # per sample: a component failed (and no fallback)
    disabled: list[str] = field(default_factory=list)  # labels the circuit breaker disabled (so far, this set)
    details: dict[str, list[dict | None]] = field(default_factory=dict)  # per label that reported any: per sample

    def __post_init__(self) -> None:
        if not self.failed and self.total:
            bad = {i for idx in self.failed_samples.values() for i in idx}
            self.failed = [i in bad for i in range(len(self.total))]


MAX_ERRORS_KEPT = 5
BATCH_TIMEOUT_FACTOR = 2.0  # default batch_timeout_s = this x timeout_s
# processes=0: this many sandbox workers, whatever the CPU count: a hanging batch call holds one while
# per-row calls run on the others, and workers mostly wait (a hang costs a worker, rarely a core).
PROCESSES_AUTO = 8
NETWORK_ERRORS = ("Network is unreachable", "Temporary failure in name resolution")
NO_NETWORK_HINT = " (reward workers have no network unless the set has network=True)"
CHAT_ERROR = "string indices must be integers"  # a conversational reward (completion[0]["content"]) given text
CHAT_HINT = (" (the reward reads chat completions, completion[0]['content']; it gets them where the rows' 'prompt' "
             "column is a list of messages, TRL's conversational format)")


@dataclass
class _Component:
    spec: RewardSpec
    label: str
    fn: Callable
    target: tuple | None  # sandbox target; None = run in-process
    needs: set[str]
    state: CallState = field(default_factory=CallState)


class RewardSet:
    """Weighted, gated rewards; ``score`` returns the total and every component.

    ``timeout_s``: limit per row for rewards run in the sandbox (and per check in math_answer's
    own sandbox, unless its params set one); ``batch_timeout_s``: limit for the one call on the
    whole batch (default ``BATCH_TIMEOUT_FACTOR`` x ``timeout_s``; per-row calls start beside it
    once it runs past ``timeout_s`` or a few times its usual time); ``fallback``: score for a failed sample (None = not applicable, and the sample is marked
    ``failed``); ``processes``: sandbox worker processes (0 = ``PROCESSES_AUTO``).
    ``breaker_after``: consecutive ``score`` calls in which the reward timed out on every call it
    got before it is declared dead (0 = never); ``on_breaker``: ``"stop"`` (UserError) or
    ``"disable"`` (score it None from then on, listed in ``RewardScores.disabled``).
    Sandbox workers: ``memory_mb`` of address space each (None = no limit), ``network`` (False:
    none, where the kernel allows a private network namespace), ``pass_env``: extra environment
    variables to pass (the sandbox's environment is an allow-list: no tokens or keys).
    """

    def __init__(self, specs: Iterable[RewardSpec | dict[str, Any]], timeout_s: float = 5.0,
                 fallback: float | None = None, processes: int = 0, batch_timeout_s: float | None = None,
                 breaker_after: int = 3, on_breaker: str = "stop", memory_mb: int | None = 4096,
                 network: bool = False, pass_env: Iterable[str] = ()):
        if timeout_s <= 0:
            raise UserError(f"reward timeout_s must be > 0, got {timeout_s}")
        if batch_timeout_s is not None and batch_timeout_s <= 0:
            raise UserError(f"reward batch_timeout_s must be > 0, got {batch_timeout_s}")
        if on_breaker not in ("stop", "disable"):
            raise UserError(f"on_breaker must be 'stop' or 'disable', got {on_breaker!r}")
        if breaker_after < 0 or (memory_mb is not None and memory_mb <= 0):
            raise UserError(f"breaker_after must be >= 0 and memory_mb > 0 (got {breaker_after}, {memory_mb})")
        self.timeout_s = float(timeout_s)
        self.batch_timeout_s = float(batch_timeout_s or BATCH_TIMEOUT_FACTOR * self.timeout_s)
        self.fallback = fallback
        self._explicit_processes = int(processes)
        self.processes = int(processes) if processes > 0 else PROCESSES_AUTO
        self.breaker_after, self.on_breaker = int(breaker_after), on_breaker
        self.isolation = Isolation(memory_mb, bool(network), tuple(pass_env))
        self.disabled: list[str] = []
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
        limits = [("timeout_s", self.timeout_s)] + ([("processes", self._explicit_processes)] if self._explicit_processes > 0 else [])
        inherited = {k: v for k, v in limits if k in getattr(fn, "__dataclass_fields__", {}) and k not in params}
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

    def warm(self) -> None:
        """Start the sandbox workers now (a first ``score`` would otherwise wait for them)."""
        if any(c.target is not None for c in self._components):
            get_pool("user", self.processes, self.isolation).warm()

    def close(self) -> None:
        """Stop the sandbox workers of this set's settings (what they spawned dies too); a later
        ``score`` starts fresh ones."""
        close_pool("user", self.isolation)

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
        errs: dict[str, list[tuple[int, str]]] = {}
        seconds: dict[str, float] = {}
        details: dict[str, list[dict | None]] = {}
        for c in self._components:
            t0 = time.perf_counter()
            rec = _DetailRecorder(c.fn, n)
            ran = Ran([None] * n) if c.state.disabled else self._run(c, completions, columns, rec)
            seconds[c.label] = time.perf_counter() - t0
            comps[c.label], errs[c.label] = ran.values, ran.errs
            if any(d is not None for d in rec.details):
                details[c.label] = rec.details
        self._refuse_overflow(comps, errs)
        for c in self._components:
            e = errs[c.label]
            if e:
                log.warning("reward '%s' failed on %d of %d samples (first: sample %d: %s)", c.label, len(e), n, e[0][0], e[0][1])
            if self.fallback is not None:
                bad = {i for i, _ in e}
                comps[c.label] = [self.fallback if i in bad else v for i, v in enumerate(comps[c.label])]
        bad_any = {i for e in errs.values() for i, _ in e}
        return RewardScores(
            total=[self._total(comps, i) for i in range(n)], components=comps,
            failures={k: len(e) for k, e in errs.items()}, seconds=seconds,
            errors={k: [f"sample {i}: {msg}" for i, msg in e[:MAX_ERRORS_KEPT]] for k, e in errs.items()},
            failed_samples={k: [i for i, _ in e] for k, e in errs.items()},
            failed=[self.fallback is None and i in bad_any for i in range(n)], disabled=list(self.disabled),
            details=details)

    def _total(self, comps: dict[str, list[float | None]], i: int) -> float:
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
        return t if any_applicable else 0.0

    def _refuse_overflow(self, comps: dict[str, list[float | None]], errs: dict[str, list[tuple[int, str]]]) -> None:
        """A finite score whose weighted value, or whose addition to the sample's other weighted
        scores, is not finite (1e308-style values) is a failure of that component, not an inf total."""
        for i in range(len(next(iter(comps.values())))):
            acc = 0.0
            for c in self._components:
                v = comps[c.label][i]
                if v is None:
                    continue
                w = c.spec.weight * v
                if math.isfinite(w) and math.isfinite(acc + abs(w)):
                    acc += abs(w)
                    continue
                comps[c.label][i] = None
                errs[c.label] = sorted(errs[c.label] + [(i, f"score {v:g} (weight {c.spec.weight:g}) overflows the total")])

    def _run(self, c: _Component, completions: list, columns: dict[str, Any], rec: _DetailRecorder) -> Ran:
        if c.target is None:
            return run_inline(rec, completions, columns)  # rec calls c.fn, keeping what it reports by sample
        pool = get_pool("user", self.processes, self.isolation)
        ran = run_sandboxed(pool, c.target, completions, columns, self.timeout_s, self.batch_timeout_s, c.state)
        if ran.batch_failed and not c.state.told_batch:
            c.state.told_batch = True
            log.warning("reward '%s': its batch call failed (%s): its rows were scored one by one, in parallel "
                        "(said once; each call tries the batch first)", c.label, ran.batch_failed)
        c.state.dead_calls = c.state.dead_calls + 1 if ran.dead else 0
        if self.breaker_after and c.state.dead_calls >= self.breaker_after:
            self._trip(c)
        if not self.isolation.network:
            ran.errs = [(i, m + NO_NETWORK_HINT if any(x in m for x in NETWORK_ERRORS) else m) for i, m in ran.errs]
        if completions and isinstance(completions[0], str):
            ran.errs = [(i, m + CHAT_HINT if CHAT_ERROR in m else m) for i, m in ran.errs]
        return ran

    def _trip(self, c: _Component) -> None:
        why = (f"reward '{c.label}' timed out on every call in {c.state.dead_calls} consecutive score() calls "
               f"(timeout_s={self.timeout_s:g} per row, batch_timeout_s={self.batch_timeout_s:g})")
        if self.on_breaker == "stop":
            raise UserError(f"{why}: stopping (on_breaker='stop'). Fix or speed up the reward, raise timeout_s, "
                            "or set on_breaker='disable' to go on without it")
        c.state.disabled = True
        self.disabled.append(c.label)
        log.error("%s: DISABLED for the rest of the run (on_breaker='disable'); it scores None from now on "
                  "and the objective no longer includes it", why)
        if len(self.disabled) == len(self._components):
            raise UserError(f"{why}, and every reward of the set is now disabled: nothing is left to score")


class _DetailRecorder:
    """Calls an in-process reward as ``run_inline`` does and keeps the details it reports
    (:func:`rewards.core.report_detail`) by sample: from the batch call, or from ``run_inline``'s
    one-row retries, which come in sample order after a failed batch call."""

    def __init__(self, fn: Callable, n: int):
        self.fn, self.n, self._row = fn, n, 0
        self.details: list[dict | None] = [None] * n

    def __call__(self, completions: list, **columns: Any) -> Any:
        rows = range(self.n) if len(completions) == self.n else [self._row]
        if len(completions) != self.n:
            self._row += 1
        with collect_details() as got:
            try:
                return self.fn(completions, **columns)
            finally:
                for i, d in got:
                    if 0 <= i < len(rows):
                        self.details[rows[i]] = d


def _pickled_target(fn: Callable) -> tuple | None:
    inner = getattr(fn, "fn", fn)  # a RewardCall: judge the function it calls
    qual = getattr(inner, "__qualname__", "")
    if getattr(inner, "__module__", "__main__") == "__main__" or "<" in qual:
        log.warning("reward %r cannot be sent to a sandbox worker (defined in __main__ or a closure): it runs "
                    "in-process with exceptions isolated but no hard time limit; give it as module:fn or file.py:fn", fn)
        return None
    try:
        return ("pickled", pickle.dumps(fn))
    except Exception:  # noqa: BLE001
        return None
