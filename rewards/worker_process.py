"""One sandbox worker process, seen from the parent: its isolation settings and allow-listed
environment, the framed pickle protocol, start, per-task deadlines and kill (see :mod:`rewards.sandbox`)."""

from __future__ import annotations

import logging
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("rewards")

HEADER = struct.Struct("<Q")
STARTUP_TIMEOUT_S = 120.0  # a cold interpreter importing sympy on a busy machine; not counted against tasks
LOAD_TIMEOUT_S = 120.0  # loading a reward in a worker (importing its file: torch, transformers); not counted against rows
CANCEL_POLL_S = 0.05  # how often a wait for a reply checks its cancel event
EXIT_GRACE_S = 2.0  # a worker that closed its pipe is given this long to exit by itself (its exit code is the error)

Target = tuple  # ("func", "module:attr") | ("reward", name, params) | ("pickled", bytes)

# Environment variables a worker inherits (plus LC_*); everything else (tokens, keys, cloud credentials) stays out.
ENV_ALLOWED = ("PATH", "LANG", "LANGUAGE", "TZ", "TERM", "PYTHONHASHSEED", "PYTHONUTF8", "PYTHONIOENCODING",
               "PYTHONDONTWRITEBYTECODE", "PYTHONWARNINGS", "VIRTUAL_ENV")
ONE_THREAD = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class Isolation:
    """What a worker may use: ``memory_mb`` of address space (None: no limit), the ``network``
    (False: a fresh network namespace where the kernel allows it), and ``pass_env``: names of
    extra environment variables to pass through (e.g. an API key a judge reward needs)."""

    memory_mb: int | None = 4096
    network: bool = False
    pass_env: tuple[str, ...] = ()


def worker_env(iso: Isolation, home: str) -> dict[str, str]:
    """The allow-listed environment of a worker whose private folder is ``home``."""
    env = {k: v for k, v in os.environ.items() if k in ENV_ALLOWED or k.startswith("LC_")}
    env.update({k: "1" for k in ONE_THREAD})
    env.update(HOME=home, TMPDIR=home, TMP=home, TEMP=home)
    env.update({k: os.environ[k] for k in iso.pass_env if k in os.environ})
    # the parent's import path and working directory, so module:fn rewards and test helpers import the same way
    paths = [os.getcwd()] + [os.path.abspath(p) for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["RLTK_REWARD_WORKER"] = "1"
    env["RLTK_WORKER_NETWORK"] = "1" if iso.network else "0"
    if iso.memory_mb:
        env["RLTK_WORKER_MEMORY_MB"] = str(int(iso.memory_mb))
    return env


@dataclass
class Outcome:
    """Result of one task: ``ok`` with ``value``, or not ok with ``error`` (exception text or timeout)."""

    ok: bool
    value: Any = None
    error: str | None = None
    timed_out: bool = False
    seconds: float = 0.0
    cancelled: bool = False  # given up by the caller (its worker killed): neither an answer nor a timeout


class WorkerDied(RuntimeError):
    pass


class Cancelled(Exception):
    """The caller's ``cancel`` event was set while waiting for a reply."""


def write_frame(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(HEADER.pack(len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_exact(fd: int, n: int, deadline: float | None) -> bytes | None:
    """Read ``n`` bytes; None on EOF; TimeoutError past ``deadline`` (time.monotonic)."""
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _await_reply(fd: int, deadline: float | None, cancel: threading.Event) -> None:
    """Until ``fd`` is readable: TimeoutError past ``deadline``, Cancelled soon after ``cancel`` is set."""
    while True:
        if cancel.is_set():
            raise Cancelled
        left = CANCEL_POLL_S if deadline is None else min(CANCEL_POLL_S, deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError
        if select.select([fd], [], [], left)[0]:
            return


def read_frame(fd: int, deadline: float | None = None, cancel: threading.Event | None = None) -> Any:
    """One frame; EOFError when the pipe closes. ``cancel`` is only checked before the frame starts,
    so a cancelled read never leaves half a frame behind."""
    if cancel is not None:
        _await_reply(fd, deadline, cancel)
    head = read_exact(fd, HEADER.size, deadline)
    if head is None:
        raise EOFError
    body = read_exact(fd, HEADER.unpack(head)[0], deadline)
    if body is None:
        raise EOFError
    return pickle.loads(body)


class Worker:
    """One worker interpreter. Not thread-safe: a pool hands each worker to one thread at a time."""

    def __init__(self, isolation: Isolation = Isolation()):
        self.home = tempfile.mkdtemp(prefix="rltk-reward-")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rewards._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=worker_env(isolation, self.home),
            cwd=self.home,
            close_fds=True,
            start_new_session=True,  # its own process group: killed as a whole, deaf to the trainer's terminal
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        self.ready = False
        self.report: dict[str, Any] = {}  # the isolation the worker got (see rewards._worker)
        self.known: set[bytes] = set()  # digests of pickled targets this worker holds

    def wait_ready(self, cancel: threading.Event | None = None) -> None:
        """Block until the worker has started; Cancelled (the worker left intact) when ``cancel`` is set."""
        if self.ready:
            return
        try:
            msg = read_frame(self._out, time.monotonic() + STARTUP_TIMEOUT_S, cancel)
        except (TimeoutError, EOFError) as e:
            self.kill()
            raise WorkerDied(f"reward worker failed to start ({type(e).__name__}); see its stderr above") from e
        if not (isinstance(msg, tuple) and msg[:1] == ("ready",)):
            self.kill()
            raise WorkerDied(f"reward worker sent {msg!r} instead of ready")
        self.report = msg[1] if len(msg) > 1 else {}
        self.ready = True
        _warn_once(self.report)

    def run_chunk(self, target: Target, items: list[tuple[tuple, dict]], timeout_s: float,
                  cancel: threading.Event | None = None, loaded: threading.Event | None = None) -> list[Outcome]:
        """Run ``items`` in order; each gets ``timeout_s`` from the previous reply. Stops at the first
        timeout or cancel (the worker is then dead): the returned list may be shorter than ``items``.
        Cancelled if ``cancel`` is set while the worker is still starting."""
        self.wait_ready(cancel)
        if self.proc.poll() is not None:  # died while idle (killed from outside): the item is not to blame
            self.kill()
            raise WorkerDied(f"reward worker exited while idle (exit code {self.proc.returncode})")
        tgt = target
        if target[0] == "pickled":
            import hashlib

            digest = hashlib.sha1(target[1]).digest()
            tgt = ("cached", digest) if digest in self.known else ("pickled", target[1], digest)
            self.known.add(digest)
        try:
            write_frame(self._in, ("run", tgt, items))
        except (BrokenPipeError, OSError) as e:
            self.kill()
            raise WorkerDied(f"reward worker pipe closed: {e}") from e
        out: list[Outcome] = []
        first = self._await_load(timeout_s, cancel, out)
        if first is None:
            return out
        if loaded is not None:
            loaded.set()
        pending = None if first == ("loaded", None) else first  # loading failed: this is the first item's reply
        for _ in items:
            t0 = time.monotonic()
            try:
                status, value = pending or read_frame(self._out, t0 + timeout_s, cancel)
                pending = None
            except Cancelled:
                self.kill()
                out.append(Outcome(False, error="cancelled", cancelled=True, seconds=time.monotonic() - t0))
                return out
            except TimeoutError:
                self.kill()
                out.append(Outcome(False, error=f"timed out after {timeout_s:g} s", timed_out=True, seconds=timeout_s))
                return out
            except EOFError:
                code = self.kill(grace_s=EXIT_GRACE_S)
                out.append(Outcome(False, error=f"worker died (exit code {code}; out of memory or crashed)",
                                   seconds=time.monotonic() - t0))
                return out
            dt = time.monotonic() - t0
            out.append(Outcome(True, value, seconds=dt) if status == "ok" else Outcome(False, error=value, seconds=dt))
        return out

    def _await_load(self, timeout_s: float, cancel: threading.Event | None, out: list[Outcome]) -> tuple | None:
        """Wait (under ``LOAD_TIMEOUT_S``, or ``timeout_s`` if longer) for the worker to load the target:
        its ``("loaded", None)`` frame, or the first item's reply when loading failed. None (and the
        outcome in ``out``) when the worker was killed meanwhile."""
        t0, limit = time.monotonic(), max(timeout_s, LOAD_TIMEOUT_S)
        try:
            return read_frame(self._out, t0 + limit, cancel)
        except Cancelled:
            err, timed_out = "cancelled", False
        except TimeoutError:
            err, timed_out = f"timed out loading the reward after {limit:g} s", True
        except EOFError:
            err, timed_out = f"worker died loading the reward (exit code {self.kill(grace_s=EXIT_GRACE_S)})", False
        self.kill()
        out.append(Outcome(False, error=err, cancelled=err == "cancelled", timed_out=timed_out,
                           seconds=time.monotonic() - t0))
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, grace_s: float = 0.0) -> int | None:
        """SIGKILL the worker's process group (what it spawned dies too); its exit code. ``grace_s``:
        first wait that long for it to exit by itself (after it closed its pipe)."""
        if grace_s:
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group outlives its leader while members remain
        except (ProcessLookupError, PermissionError):
            pass
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)
        return code


_WARNED: set[str] = set()


def _warn_once(report: dict[str, Any]) -> None:
    missing = "; ".join(report.get("missing", []))
    if missing and missing not in _WARNED:
        _WARNED.add(missing)
        log.warning("reward sandbox: partial isolation (%s): see 'What the sandbox isolates' in the README", missing)
