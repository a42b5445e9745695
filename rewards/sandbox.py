"""Hard time limits for untrusted work: a small pool of worker processes, killed and replaced on timeout.

Why processes: a Python thread cannot be stopped, and ``signal.alarm`` only works on the main
thread (not in a trainer's worker threads or a Ray actor's). A worker is a fresh interpreter
(``python -m rewards._worker``, started with fork+exec, so it is safe while torch and threads are
loaded in the parent and never re-imports the user's ``__main__``). It reads tasks on stdin and
streams one pickled reply per task on stdout; the parent waits for each reply with ``select`` and
a deadline, and on a miss kills the worker (SIGKILL) and starts a replacement.

>>> pool = SandboxPool(size=1)
>>> [o.value for o in pool.run(("func", "operator:add"), [((1, 2), {}), ((3, 4), {})], timeout_s=10)]
[3, 7]
>>> pool.close()
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

HEADER = struct.Struct("<Q")
STARTUP_TIMEOUT_S = 120.0  # a cold interpreter importing sympy on a busy machine; not counted against tasks
MAX_CHUNK = 32  # tasks sent to a worker in one frame; replies still come (and are timed) one by one

Target = tuple  # ("func", "module:attr") | ("reward", name, params) | ("pickled", bytes)


@dataclass
class Outcome:
    """Result of one task: ``ok`` with ``value``, or not ok with ``error`` (exception text or timeout)."""

    ok: bool
    value: Any = None
    error: str | None = None
    timed_out: bool = False
    seconds: float = 0.0


class WorkerDied(RuntimeError):
    pass


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


def read_frame(fd: int, deadline: float | None = None) -> Any:
    head = read_exact(fd, HEADER.size, deadline)
    if head is None:
        raise EOFError
    body = read_exact(fd, HEADER.unpack(head)[0], deadline)
    if body is None:
        raise EOFError
    return pickle.loads(body)


class Worker:
    """One worker interpreter. Not thread-safe: a pool hands each worker to one thread at a time."""

    def __init__(self, memory_mb: int | None = None):
        env = dict(os.environ)
        env["RLTK_REWARD_WORKER"] = "1"
        if memory_mb:
            env["RLTK_WORKER_MEMORY_MB"] = str(memory_mb)
        # the parent's import path, so module:fn rewards and test helpers import the same way
        env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rewards._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            close_fds=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        self.ready = False
        self.known: set[bytes] = set()  # digests of pickled targets this worker holds

    def wait_ready(self) -> None:
        if self.ready:
            return
        try:
            msg = read_frame(self._out, time.monotonic() + STARTUP_TIMEOUT_S)
        except (TimeoutError, EOFError) as e:
            self.kill()
            raise WorkerDied(f"reward worker failed to start ({type(e).__name__}); see its stderr above") from e
        if msg != ("ready",):
            self.kill()
            raise WorkerDied(f"reward worker sent {msg!r} instead of ready")
        self.ready = True

    def run_chunk(self, target: Target, items: list[tuple[tuple, dict]], timeout_s: float) -> list[Outcome]:
        """Run ``items`` in order; each gets ``timeout_s`` from the previous reply. Stops at the first
        timeout (the worker is then dead): the returned list may be shorter than ``items``."""
        self.wait_ready()
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
        for _ in items:
            t0 = time.monotonic()
            try:
                status, value = read_frame(self._out, t0 + timeout_s)
            except TimeoutError:
                self.kill()
                out.append(Outcome(False, error=f"timed out after {timeout_s:g} s", timed_out=True, seconds=timeout_s))
                return out
            except EOFError:
                code = self.kill()
                out.append(Outcome(False, error=f"worker died (exit code {code}; out of memory or crashed)",
                                   seconds=time.monotonic() - t0))
                return out
            dt = time.monotonic() - t0
            out.append(Outcome(True, value, seconds=dt) if status == "ok" else Outcome(False, error=value, seconds=dt))
        return out

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass
        return code


class SandboxPool:
    """``size`` worker processes; ``run`` spreads tasks over them, each task under ``timeout_s``.

    A task that raises gives ``Outcome(ok=False, error="Type: message")``; one that times out
    kills its worker, gives ``Outcome(timed_out=True)``, and the worker is replaced at once.
    """

    def __init__(self, size: int = 1, memory_mb: int | None = None):
        self.size = max(1, int(size))
        self.memory_mb = memory_mb
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._all: list[Worker] = []
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="rltk-reward")
        self.replaced = 0  # workers killed (timeouts, crashes) and replaced, over the pool's life
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        w = Worker(self.memory_mb)
        with self._lock:
            self._all = [x for x in self._all if x.alive()] + [w]
        self._idle.put(w)

    def grow(self, size: int) -> None:
        with self._lock:
            extra, self.size = size - self.size, max(self.size, size)
            old, self._threads = self._threads, ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="rltk-reward")
        old.shutdown(wait=False)
        for _ in range(max(0, extra)):
            self._spawn()

    def warm(self) -> None:
        """Block until every worker has started (e.g. before timing something)."""
        ws = [self._idle.get() for _ in range(self.size)]
        for w in ws:
            w.wait_ready()
            self._idle.put(w)

    def _run_chunk(self, target: Target, items: list, timeout_s: float) -> list[Outcome]:
        results: list[Outcome] = []
        dead_before_start = 0
        while len(results) < len(items):
            w = self._idle.get()
            try:
                got = w.run_chunk(target, items[len(results):], timeout_s)
            except WorkerDied as e:
                # The worker was gone before it received this item (killed from outside while idle,
                # or failed to start): the item itself is not to blame, so it gets a fresh worker.
                self.replaced += 1
                self._spawn()
                dead_before_start += 1
                if dead_before_start > 2:
                    results.append(Outcome(False, error=str(e)))
                continue
            results.extend(got)
            if w.alive():
                self._idle.put(w)
            else:
                self.replaced += 1
                self._spawn()
        return results

    def run(self, target: Target, items: list[tuple[tuple, dict]], timeout_s: float) -> list[Outcome]:
        """One Outcome per ``(args, kwargs)`` item, in order."""
        if not items:
            return []
        per = max(1, min(MAX_CHUNK, -(-len(items) // self.size)))
        chunks = [items[i:i + per] for i in range(0, len(items), per)]
        if len(chunks) == 1:
            return self._run_chunk(target, chunks[0], timeout_s)
        futures = [self._threads.submit(self._run_chunk, target, c, timeout_s) for c in chunks]
        return [o for f in futures for o in f.result()]

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for w in workers:
            w.kill()
        self._threads.shutdown(wait=False)


_POOLS: dict[str, SandboxPool] = {}
_POOLS_LOCK = threading.Lock()
VERIFY_MEMORY_MB = 4096  # math verification workers: a sympy memory bomb ends in MemoryError, not swap


def get_pool(kind: str, size: int = 1) -> SandboxPool:
    """The process-wide pool of ``kind`` ("verify": built-in math checks; "user": user rewards),
    grown to at least ``size`` workers."""
    with _POOLS_LOCK:
        pool = _POOLS.get(kind)
        if pool is None:
            pool = _POOLS[kind] = SandboxPool(size, memory_mb=VERIFY_MEMORY_MB if kind == "verify" else None)
        elif pool.size < size:
            pool.grow(size)
        return pool


def in_worker() -> bool:
    """True inside a sandbox worker, where the parent's deadline already bounds all work."""
    return os.environ.get("RLTK_REWARD_WORKER") == "1"


@atexit.register
def _close_pools() -> None:
    for pool in list(_POOLS.values()):
        pool.close()
    _POOLS.clear()
