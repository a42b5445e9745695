"""The reward-function API: the batch convention, the ``@reward`` decorator, the registry.

A reward function is any callable ``fn(completions, **columns) -> list[float | None]``
(TRL's convention): ``completions`` is a list of strings, or for chat data a list of
message lists; ``columns`` holds ``prompts`` and every dataset column as lists of the same
length. ``None`` means "not applicable" and is excluded from means, never counted as 0.

>>> @reward
... def short(completion, **row):
...     return 1.0 if len(completion) < 10 else 0.0
>>> short(["ok", "far too long an answer"], prompts=["p", "q"])
[1.0, 0.0]
>>> short([[{"role": "assistant", "content": "ok"}]])   # chat-format completion
[1.0]
>>> get_reward("format_answer", style="####")(["so #### 72"])
[1.0]

A reward that is not a built-in is called the way TRL's ``GRPOTrainer`` calls it: ``completions``
by keyword when its first parameter is named ``completions`` or is one of the columns given (so
``fn(completion_ids, **kwargs)`` gets the token ids), else positionally; an ``async def`` reward (or
one returning an awaitable) is awaited. A callable taking neither ``completions``, ``prompts``,
``completion_ids`` nor ``**kwargs`` is a *factory* (TRL's ``get_soft_overlong_punishment``): it is
called once with ``params``, and what it returns is the reward (see :func:`get_reward`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from typing import Any, Callable, Iterable

from rltk.core.config import from_dict
from rltk.core.errors import UserError
from rltk.core.registry import Registry

RewardFn = Callable[..., list]

REWARDS: Registry = Registry("reward")

# Columns a reward function may receive that are not dataset columns.
NON_DATA_ARGS = {"completions", "prompts", "completion", "prompt", "kwargs", "completion_ids", "trainer_state", "self"}
# Parameters by which a callable is known to be a reward, not a factory of one.
REWARD_ARGS = ("completions", "prompts", "completion_ids")


def is_conversational(prompt: Any) -> bool:
    """TRL's test of a conversational prompt: a list whose first item is a message with a ``role``.

    >>> is_conversational([{"role": "user", "content": "2+2?"}]), is_conversational("2+2?")
    (True, False)
    """
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0]


def chat_completion(text: str) -> list[dict[str, str]]:
    """A completion in TRL's conversational form: one assistant message."""
    return [{"role": "assistant", "content": text}]


def completion_text(completion: Any) -> str:
    """The text of one completion: a string as is; a chat completion (list of messages) as the
    concatenated content of its assistant messages (all messages if none is marked assistant).

    >>> completion_text([{"role": "assistant", "content": "x = 2"}])
    'x = 2'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        msgs = [m for m in completion if isinstance(m, dict)]
        chosen = [m for m in msgs if m.get("role") == "assistant"] or msgs
        return "\n".join(_content_text(m.get("content")) for m in chosen)
    return "" if completion is None else str(completion)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal-style content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def row_view(columns: dict[str, Any], i: int, n: int) -> dict[str, Any]:
    """Row ``i`` of batch columns: list columns of length ``n`` are indexed, others passed through.
    ``prompts`` also appears as ``prompt`` (the per-sample name)."""
    row = {k: (v[i] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in columns.items()}
    if "prompts" in row and "prompt" not in row:
        row["prompt"] = row["prompts"]
    return row


def reward(fn: Callable[..., float | None] | None = None, *, columns: Iterable[str] | None = None) -> Any:
    """Lift a per-sample ``fn(completion: str, **row) -> float | None`` into the batch form.

    ``columns`` names the dataset columns the function needs (checked before any scoring);
    by default they are the keyword parameters of ``fn`` without defaults.
    """

    def lift(f: Callable[..., float | None]) -> RewardFn:
        @functools.wraps(f)
        def batch(completions: list, **cols: Any) -> list[float | None]:
            n = len(completions)
            return [f(completion_text(c), **row_view(cols, i, n)) for i, c in enumerate(completions)]

        batch.__rltk_per_sample__ = f  # type: ignore[attr-defined]
        batch.required_columns = lambda: set(columns) if columns is not None else _signature_columns(f, skip=1)  # type: ignore[attr-defined]
        return batch

    return lift if fn is None else lift(fn)


def _signature_columns(fn: Callable, skip: int) -> set[str]:
    """Keyword parameters without defaults (after the first ``skip``) = columns the function needs."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return set()
    need = set()
    for p in params[skip:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.default is not p.empty:
            continue
        if p.name not in NON_DATA_ARGS:
            need.add(p.name)
    return need


def required_columns(fn: RewardFn) -> set[str]:
    """Dataset columns a reward function needs: its ``required_columns()`` if it has one, else the
    keyword parameters of a TRL-style ``fn(completions, col, **kwargs)`` that have no default."""
    req = getattr(fn, "required_columns", None)
    if callable(req):
        return set(req())
    if isinstance(fn, functools.partial):
        return _signature_columns(fn.func, skip=1) - set(fn.keywords)
    return _signature_columns(fn, skip=1)


# --- built-ins -----------------------------------------------------------------------------

class BuiltinReward:
    """Base of the built-in rewards: frozen dataclasses whose fields are the reward's knobs.

    ``bounded = True`` promises that the reward bounds its own work on any input (length limits,
    its own sandboxed checks), so :class:`rewards.RewardSet` may call it in-process.
    """

    bounded: bool = True

    def required_columns(self) -> set[str]:
        return set()

    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        n = len(completions)
        return [self.score_one(completion_text(c), row_view(columns, i, n)) for i, c in enumerate(completions)]

    def score_one(self, text: str, row: dict[str, Any]) -> float | None:
        raise NotImplementedError


def get_reward(name_or_path: str | RewardFn, **params: Any) -> RewardFn:
    """A batch reward callable: a registered name (configured with ``params``), ``pkg.mod:fn`` or
    ``file.py:fn``, or a callable. A non-built-in comes back as a :class:`RewardCall` (called TRL's
    way); its ``params`` are bound as keyword arguments, unless it is a factory (:func:`is_factory`):
    then it is called with ``params`` and its product is the reward.

    >>> def longer_than(size):   # a factory, like TRL's get_soft_overlong_punishment
    ...     return lambda completion_ids, **kwargs: [float(len(ids) > size) for ids in completion_ids]
    >>> get_reward(longer_than, size=2)(["ab", "abc"], completion_ids=[[1, 2], [1, 2, 3]])
    [0.0, 1.0]
    """
    if callable(name_or_path) and not isinstance(name_or_path, str):
        obj: Any = name_or_path
        label = getattr(obj, "__name__", repr(obj))
    else:
        obj = REWARDS.get(name_or_path)
        label = name_or_path
    if isinstance(obj, type) and issubclass(obj, BuiltinReward):
        return from_dict(obj, dict(params), source=f"reward '{label}' params")
    if not callable(obj):
        raise UserError(f"reward '{label}' is not callable")
    if isinstance(obj, BuiltinReward) and not params:
        return obj
    if is_factory(obj):
        try:
            obj = obj(**params)
        except Exception as e:  # noqa: BLE001 - the config's params do not fit the factory
            raise UserError(f"reward '{label}' is a factory (it takes no completions, prompts, completion_ids or "
                            f"**kwargs): calling it with params {params} failed: {type(e).__name__}: {e}") from e
        if not callable(obj):
            raise UserError(f"reward factory '{label}' returned a {type(obj).__name__}, not a reward function")
    elif params:
        obj = functools.partial(obj, **params)
    return obj if isinstance(obj, RewardCall) else RewardCall(obj)


def _parameters(fn: Callable) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def is_factory(fn: Callable) -> bool:
    """True for a callable that makes a reward rather than being one: its signature is known and has no
    ``completions``, ``prompts`` or ``completion_ids`` parameter and no ``**kwargs`` (a reward must take
    ``**kwargs``, as TRL passes every column to every reward). A class is judged by its ``__init__``.

    >>> is_factory(lambda max_len, cache=0: None), is_factory(lambda completions, **kw: None)
    (True, False)
    """
    params = _parameters(fn)
    if params is None:
        return False
    return not any(p.kind == p.VAR_KEYWORD or p.name in REWARD_ARGS for p in params)


def settle(value: Any) -> Any:
    """The value of an awaitable (an ``async def`` reward's coroutine), run to completion; else ``value``.
    Inside a running event loop (a notebook) it runs on a fresh loop in a helper thread."""
    if not inspect.isawaitable(value):
        return value

    async def wait() -> Any:
        return await value

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rltk-async-reward") as pool:
        return pool.submit(asyncio.run, wait()).result()


class RewardCall:
    """A user's (or TRL's) reward function, called the way TRL calls it (see the module docstring).
    Picklable when ``fn`` is (a sandbox worker may receive it)."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        params = _parameters(fn)
        positional = [p for p in params or [] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        first = positional[0] if positional else None
        # None: always positional; "": keyword (no positional parameter); a name: keyword if it names completions or a column
        self._first = None if params is None or (first is not None and first.kind != first.POSITIONAL_OR_KEYWORD) else (first.name if first else "")

    def required_columns(self) -> set[str]:
        return required_columns(self.fn)

    def __call__(self, completions: list, **columns: Any) -> Any:
        if self._first is not None and (self._first in ("", "completions") or self._first in columns):
            return settle(self.fn(completions=completions, **columns))
        return settle(self.fn(completions, **columns))

    def __repr__(self) -> str:
        return f"RewardCall({self.fn!r})"


# --- failures that a reward reports about single samples ------------------------------------

_FAILURES: contextvars.ContextVar[list[tuple[int, str]] | None] = contextvars.ContextVar("rltk_reward_failures", default=None)


def report_failure(index: int, reason: str) -> None:
    """Called by a reward when sample ``index`` could not be scored (e.g. a check timed out);
    the reward returns None for it and :class:`rewards.RewardSet` counts the failure by name."""
    log = _FAILURES.get()
    if log is not None:
        log.append((index, reason))


class collect_failures:
    """Context manager collecting :func:`report_failure` calls made inside it."""

    def __enter__(self) -> list[tuple[int, str]]:
        self.log: list[tuple[int, str]] = []
        self._token = _FAILURES.set(self.log)
        return self.log

    def __exit__(self, *exc: Any) -> None:
        _FAILURES.reset(self._token)


# --- per-sample diagnostics a reward reports (what it found, not only its score) -------------

_DETAILS: contextvars.ContextVar[list[tuple[int, dict]] | None] = contextvars.ContextVar("rltk_reward_details", default=None)


def report_detail(index: int, detail: dict) -> None:
    """Called by a built-in reward with a short JSON-able ``detail`` about sample ``index`` of the
    batch (e.g. which step of the reasoning is wrong); :class:`rewards.RewardSet` keeps it in
    ``RewardScores.details[label][index]``. Outside :class:`collect_details` it does nothing."""
    log = _DETAILS.get()
    if log is not None:
        log.append((index, detail))


class collect_details:
    """Context manager collecting :func:`report_detail` calls made inside it.

    >>> with collect_details() as got:
    ...     report_detail(1, {"steps": 2})
    >>> got
    [(1, {'steps': 2})]
    """

    def __enter__(self) -> list[tuple[int, dict]]:
        self.log: list[tuple[int, dict]] = []
        self._token = _DETAILS.set(self.log)
        return self.log

    def __exit__(self, *exc: Any) -> None:
        _DETAILS.reset(self._token)
