"""One small registry shared by rewards, advantage estimators, losses and eval tasks.

A registry maps names to objects, refuses duplicates, and names the unknown key
(with the closest known names) in its error. Besides registered names, users can
point at any callable with ``package.module:attr`` or ``path/to/file.py:attr``.

>>> r = Registry("colour")
>>> @r.register("red")
... def red():
...     return "#f00"
>>> r.get("red")()
'#f00'
>>> r.get("blue")
Traceback (most recent call last):
...
rltk.core.errors.UserError: unknown colour 'blue' (known: red; or give module:attr / file.py:attr)
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, TypeVar

from rltk.core.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = o
            return o

        return add if obj is None else add(obj)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> T:
        """Registered name, or ``module:attr`` / ``file.py:attr``."""
        if name in self._items:
            return self._items[name]
        if ":" in name:
            return load_object(name, kind=self.kind)
        close = difflib.get_close_matches(name, self._items, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self.names()) or 'none'}"
        raise UserError(f"unknown {self.kind} {name!r} ({hint}; or give module:attr / file.py:attr)")


def load_object(ref: str, kind: str = "object") -> Any:
    """Import ``package.module:attr`` or ``path/to/file.py:attr`` (attr may be dotted)."""
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise UserError(f"{kind} reference {ref!r} must look like module:attr or file.py:attr")
    if target.endswith(".py"):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"{kind} file not found: {target}")
        mod_name = "rltk_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(mod_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(mod_name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as e:  # the user's file is broken: say which and why
                del sys.modules[mod_name]
                raise UserError(f"{kind} file {target} failed to import: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise UserError(f"{kind} module {target!r} cannot be imported: {e}") from e
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{kind} {ref!r}: {target} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def resolve_callable(ref: str | Callable, registry: Registry | None = None, kind: str = "callable") -> Callable:
    if callable(ref):
        return ref
    obj = registry.get(ref) if registry is not None else load_object(ref, kind)
    if not callable(obj):
        raise UserError(f"{kind} {ref!r} is not callable")
    return obj
