"""Entry point of a sandbox worker (``python -m rewards._worker``); see :mod:`rewards.sandbox`.

Protocol: frames (8-byte length + pickle) on stdin/stdout. The worker sends ``("ready", report)``
once isolated and imported (``report``: what isolation it got), then for each ``("run", target,
items)`` frame streams one ``(status, value)`` reply per item: ``("ok", result)`` or ``("err",
"Type: message")``. It exits when stdin closes.

Isolation (stdlib only, before any project import): the process the parent started stays a small
supervisor; the worker proper is its child. Where the kernel lets an unprivileged user create user
namespaces, the child is pid 1 of fresh user + pid + mount (+ network) namespaces: it sees only its
own processes (so it cannot name the trainer to signal it), has no network, a fresh ``/proc``, a
read-only file system except its private folder (the working directory) and a private
``/dev/shm``, and no capabilities; when it dies, every process it started dies with it.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import pickle
import select
import signal
import sys
import traceback
from typing import Any, Callable

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 0x4000, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1

try:
    LIBC: Any = ctypes.CDLL("libc.so.6", use_errno=True)
    LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
except (OSError, AttributeError):  # not glibc Linux: crash and time isolation only
    LIBC = None


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _ok(rc: int, what: str, report: dict[str, Any]) -> bool:
    if rc != 0:
        report.setdefault("missing", []).append(f"{what}: {os.strerror(ctypes.get_errno())}")
    return rc == 0


def _die_with_parent() -> None:
    """SIGKILL this process when its parent dies, even mid-task (Linux)."""
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    mb = os.environ.get("RLTK_WORKER_MEMORY_MB")
    if mb:
        limit = int(mb) << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _enter_namespaces(report: dict[str, Any]) -> bool:
    """unshare user + pid + mount (+ net) namespaces, mapping our uid/gid; False where refused."""
    network = os.environ.get("RLTK_WORKER_NETWORK") == "1"
    flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | (0 if network else CLONE_NEWNET)
    uid, gid = os.geteuid(), os.getegid()
    if LIBC is None or not _ok(LIBC.unshare(flags), "user namespaces", report):
        return False
    report["namespaces"] = ["user", "pid", "mount"] + ([] if network else ["net"])
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid or 1000} {uid} 1\n"), ("gid_map", f"{gid or 1000} {gid} 1\n")):
            with open(f"/proc/self/{name}", "w") as f:  # uid 0 maps to 1000 inside: no root powers on exec
                f.write(text)
        if not network:
            _loopback_up()
    except OSError as e:
        report.setdefault("missing", []).append(f"namespace setup: {e}")
    return True


def _loopback_up() -> None:
    """A fresh network namespace has only ``lo``, down: bring it up (local sockets keep working)."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh14s", fcntl.ioctl(s, 0x8913, struct.pack("16sh14s", b"lo", 0, b"")))[1]  # SIOCGIFFLAGS
        fcntl.ioctl(s, 0x8914, struct.pack("16sh14s", b"lo", flags | 1, b""))  # SIOCSIFFLAGS |= IFF_UP


def _seal_filesystem(report: dict[str, Any]) -> None:
    """In the new mount namespace: a fresh /proc, everything read-only but the private working
    directory, a private /dev/shm; then drop every capability (nothing can be undone)."""
    here = os.getcwd().encode()
    if _ok(LIBC.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "private mounts", report):
        report["proc"] = _ok(LIBC.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "fresh /proc", report)
        ro, rw = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0), _MountAttr(0, MOUNT_ATTR_RDONLY, 0, 0)
        size = ctypes.sizeof(_MountAttr)
        # the private folder becomes a mount of its own first: only then can it stay writable alone
        if (_ok(LIBC.mount(here, here, None, MS_BIND, None), "private folder", report)
                and _ok(LIBC.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(ro), size), "read-only /", report)):
            report["readonly"] = _ok(LIBC.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, here, 0, ctypes.byref(rw), size),
                                     "writable private folder", report)
            if os.path.isdir("/dev/shm"):
                _ok(LIBC.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777"), "private /dev/shm", report)
    os.chdir(here)  # re-enter it through the writable bind mount (the old cwd is on the read-only one)
    _ok(LIBC.capset(ctypes.byref(_CapHeader(0x20080522, 0)), (_CapData * 2)()), "drop capabilities", report)


def _split(report: dict[str, Any], out_fd: int) -> None:
    """Fork: this process supervises (and exits with the child's status), the child goes on as the worker."""
    isolated = _enter_namespaces(report)
    alive_r, alive_w = os.pipe()  # closes when the supervisor dies: the child checks it once armed
    child = os.fork()
    if child:
        os.close(alive_r)
        os.close(0)  # only the worker holds the pipes: its death is the parent's EOF
        os.close(out_fd)
        status = os.waitpid(child, 0)[1]
        code = os.waitstatus_to_exitcode(status)
        if code < 0:  # die of the same signal, so the parent reads the same exit code
            try:
                signal.signal(-code, signal.SIG_DFL)
            except (OSError, ValueError):  # SIGKILL, SIGSTOP: already the default
                pass
            os.kill(os.getpid(), -code)
        os._exit(code if code >= 0 else 128 - code)
    os.close(alive_w)
    _die_with_parent()
    if select.select([alive_r], [], [], 0)[0]:  # the supervisor died before we were armed
        os._exit(1)
    if isolated:
        os.setsid()  # pid 1 of its namespace, alone in its session: kill(0, ...) reaches only itself
        _seal_filesystem(report)
    if LIBC is not None:
        LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


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


def _call(fn: Callable, args: tuple, kwargs: dict) -> tuple[str, Any]:
    try:
        return ("ok", fn(*args, **kwargs))
    except MemoryError:
        return ("err", "MemoryError: out of memory (the worker's memory limit)")
    except BaseException as e:  # noqa: BLE001 - isolated and reported to the parent
        tb = traceback.extract_tb(e.__traceback__)
        where = f" ({tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno})" if tb else ""
        return ("err", f"{type(e).__name__}: {e}{where}"[:500])


def main() -> None:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything the task prints goes to stderr, never into the reply stream
    sys.stdout = sys.stderr
    _die_with_parent()
    _limit_memory()
    report: dict[str, Any] = {"namespaces": [], "proc": False, "readonly": False,
                              "memory_mb": int(os.environ.get("RLTK_WORKER_MEMORY_MB") or 0) or None}
    _split(report, out_fd)
    # The project's modules are imported only now, by name: any rewards.* import runs rewards/__init__,
    # which loads sympy (seconds, ~100 MB). That must come after stdout is routed to stderr (an import-time
    # print would corrupt the reply stream), after die-with-parent (a parent that dies during the import
    # takes the worker with it), under the memory limit and inside the isolation.
    frames = importlib.import_module("rewards.worker_process")
    read_frame, write_frame = frames.read_frame, frames.write_frame
    get_reward = importlib.import_module("rewards.core").get_reward
    importlib.import_module("rewards.math")  # warm: sympy and the LaTeX parser load once, not per task

    write_frame(out_fd, ("ready", report))
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
        # Loading (a first call imports the user's file and what it imports: seconds for torch) is over:
        # the parent starts the items' clocks now, so an import is never taken for a slow or hanging row.
        write_frame(out_fd, ("loaded", None))
        for args, kwargs in items:
            status, value = _call(fn, args, kwargs)
            try:
                write_frame(out_fd, (status, value))  # pickles before writing: nothing half-sent
            except Exception as e:  # noqa: BLE001
                write_frame(out_fd, ("err", f"reward returned an unpicklable {type(value).__name__}: {e}"))


if __name__ == "__main__":
    main()
