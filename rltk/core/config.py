"""YAML config files mapped onto frozen dataclasses, with ``key=value`` overrides.

The dataclasses are the one source of defaults. Loading checks every key and
type: an unknown key, a wrong type or a missing file is a :class:`UserError`
naming the key (with the file) so the CLI prints one line and exits 2.

Example (``examples/arithmetic/grpo.yaml`` with an override)::

    cfg = load_config(GRPOJobConfig, "examples/arithmetic/grpo.yaml", ["grpo.beta=0.02"])
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from rltk.core.errors import UserError

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: invalid YAML: {getattr(e, 'problem', e)}") from e
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Read ``path`` (YAML; None for defaults only), apply overrides, validate into ``cls``."""
    data = load_yaml(path) if path is not None else {}
    return from_dict(cls, data, overrides=overrides, source=str(path) if path else "config")


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise UserError(f"override {item!r} must look like key=value (e.g. grpo.beta=0.02)")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key:
        raise UserError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            if not isinstance(nxt, dict):
                raise UserError(f"override {item!r}: {k!r} is not a section")
            node = nxt
        node[keys[-1]] = value
    return data


def from_dict(cls: type[T], data: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), source: str = "config") -> T:
    data = apply_overrides(data, overrides)
    return _build(cls, data, prefix="", source=source)


def _build(cls: type, data: Any, prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"{source}: {prefix.rstrip('.') or 'top level'} must be a mapping, got {_tname(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise UserError(f"{source}: unknown key '{prefix}{key}'{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], f"{prefix}{name}", source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise UserError(f"{source}: missing required key '{prefix}{name}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # __post_init__ validation
        raise UserError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {e}") from e


def _tname(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = get_origin(tp)
    bad = UserError(f"{source}: key '{key}' must be {_describe(tp)}, got {value!r} ({_tname(value)})")
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, key, source)
            except UserError:
                continue
        raise bad
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise UserError(f"{source}: key '{key}' must be one of {', '.join(map(repr, get_args(tp)))}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.", source)
    if origin in (list, tuple, dict):
        return _coerce_container(tp, origin, value, key, source, bad)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise bad
    return value


def _coerce_container(tp: Any, origin: Any, value: Any, key: str, source: str, bad: UserError) -> Any:
    """A list, tuple or dict value, each item coerced to its declared type."""
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise bad
            return tuple(_coerce(a, v, f"{key}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise bad
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(kt, k, key, source): _coerce(vt, v, f"{key}.{k}", source) for k, v in value.items()}
    raise bad


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def config_relative(value: str, config_path: str | Path | None) -> str:
    """A relative path written in a config file is relative to that file's folder when it exists there;
    otherwise it is kept as given (relative to the working directory). Absolute paths are kept.

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp(); _ = open(os.path.join(d, "rows.jsonl"), "w").close()
    >>> config_relative("rows.jsonl", os.path.join(d, "job.yaml")) == os.path.join(d, "rows.jsonl")
    True
    >>> config_relative("elsewhere.jsonl", os.path.join(d, "job.yaml"))
    'elsewhere.jsonl'
    """
    if config_path is None or not value or Path(value).expanduser().is_absolute():
        return value
    beside = Path(config_path).parent / value
    return str(beside) if beside.exists() else value


def check_range(name: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """ValueError ``"NAME must be ..., got VALUE"`` unless ``low <= value <= high`` (``*_open``: strict);
    config dataclasses call it in ``__post_init__`` so a bad value fails when the config is read.

    >>> check_range("lr", 0.0, low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: lr must be > 0, got 0.0
    """
    if value != value:  # NaN
        raise ValueError(f"{name} must be a number, got nan")
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high:
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high:g}")
        raise ValueError(f"{name} must be {' and '.join(parts)}, got {value!r}")


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) to plain dict, for writing a run's resolved config."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
