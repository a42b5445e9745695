"""Entry point of a sandbox worker (``python -m rewards._worker``); see :mod:`rewards.sandbox`.

Protocol: frames (8-byte length + pickle) on stdin/stdout. The worker sends ``("ready",)`` once
imported, then for each ``("run", target, items)`` frame streams one ``(status, value)`` reply per
item: ``("ok", result)`` or ``("err", "Type: message")``. It exits when stdin closes.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pickle
import sys
import traceback
from typing import Any, Callable


def _die_with_parent() -> None:
    try:  # Linux: SIGKILL this worker if the parent dies, even mid-task
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


def _limit_memory() -> None:
    mb = os.environ.get("RLTK_WORKER_MEMORY_MB")
    if mb:
        import resource

        limit = int(mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _resolve(target: tuple, cache: dict[Any, Callable], get_reward: Callable) -> Callable:
    kind = target[0]
    if kind == "cached":
        return cache[target[1]]
    if kind == "pickled":
        fn = cache[target[2]] = pickle.loads(target[1])
        return fn
    key = repr(target)
    if key in cache:
        return cache[key]
    if kind == "func":
        mod, _, attr = target[1].partition(":")
        fn = importlib.import_module(mod)
        for part in attr.split("."):
            fn = getattr(fn, part)
    elif kind == "reward":
        fn = get_reward(target[1], **target[2])
    else:
        raise ValueError(f"unknown target {target!r}")
    cache[key] = fn
    return fn


def main() -> None:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything the task prints goes to stderr, never into the reply stream
    sys.stdout = sys.stderr
    _die_with_parent()
    _limit_memory()
    # The project's modules are imported only now, by name: any rewards.* import runs rewards/__init__,
    # which loads sympy (seconds, ~100 MB). That must come after stdout is routed to stderr (an import-time
    # print would corrupt the reply stream), after die-with-parent (a parent that dies during the import
    # takes the worker with it) and under the memory limit.
    sandbox = importlib.import_module("rewards.sandbox")
    read_frame, write_frame = sandbox.read_frame, sandbox.write_frame
    get_reward = importlib.import_module("rewards.core").get_reward
    importlib.import_module("rewards.math")  # warm: sympy and the LaTeX parser load once, not per task

    write_frame(out_fd, ("ready",))
    cache: dict[Any, Callable] = {}
    while True:
        try:
            msg = read_frame(0)
        except EOFError:
            return
        _, target, items = msg
        try:
            fn = _resolve(target, cache, get_reward)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, per item
            err = f"{type(e).__name__}: {e}"
            for _ in items:
                write_frame(out_fd, ("err", f"cannot load reward: {err}"))
            continue
        for args, kwargs in items:
            try:
                result = fn(*args, **kwargs)
                try:
                    write_frame(out_fd, ("ok", result))  # pickles before writing: nothing half-sent
                    continue
                except Exception as e:  # noqa: BLE001
                    reply = ("err", f"reward returned an unpicklable {type(result).__name__}: {e}")
            except MemoryError:
                reply = ("err", "MemoryError: out of memory")
            except BaseException as e:  # noqa: BLE001 - isolated and reported to the parent
                tb = traceback.extract_tb(e.__traceback__)
                where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
                reply = ("err", f"{type(e).__name__}: {e}{where}"[:500])
            write_frame(out_fd, reply)


if __name__ == "__main__":
    main()
