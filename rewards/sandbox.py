"""Hard time limits for untrusted work: a small pool of worker processes, killed and replaced on timeout.

Why processes: a Python thread cannot be stopped, and ``signal.alarm`` only works on the main
thread (not in a trainer's worker threads or a Ray actor's). A worker is a fresh interpreter
(``python -m rewards._worker``, started with fork+exec, so it is safe while torch and threads are
loaded in the parent and never re-imports the user's ``__main__``). It reads tasks on stdin and
streams one pickled reply per task on stdout; the parent waits for each reply with ``select`` and
a deadline, and on a miss kills the worker's whole process group (SIGKILL) and starts a replacement.

What a worker gets (:class:`Isolation`): an allow-listed environment (no tokens or cloud keys), a
private temporary folder as working directory, ``HOME`` and ``TMPDIR``, a memory limit
(``RLIMIT_AS``), its own session, and where the kernel allows it user + pid + mount + network
namespaces (see :mod:`rewards._worker`). It is damage control for buggy rewards, not a security
boundary for hostile code.

>>> pool = SandboxPool(size=1)
>>> [o.value for o in pool.run(("func", "operator:add"), [((1, 2), {}), ((3, 4), {})], timeout_s=10)]
[3, 7]
>>> pool.close()
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from rewards.worker_process import (  # noqa: F401  (re-exported: the sandbox's public names)
    CANCEL_POLL_S, Cancelled, Isolation, Outcome, Target, Worker, WorkerDied, read_frame, write_frame,
)

MAX_CHUNK = 32  # tasks sent to a worker in one frame; replies still come (and are timed) one by one


class SandboxPool:
    """``size`` worker processes; ``run`` spreads tasks over them, each task under ``timeout_s``.

    A task that raises gives ``Outcome(ok=False, error="Type: message")``; one that times out
    kills its worker, gives ``Outcome(timed_out=True)``, and the worker is replaced at once.
    """

    def __init__(self, size: int = 1, isolation: Isolation = Isolation()):
        self.size = max(1, int(size))
        self.isolation = isolation
        self.closed = False
        # Last in, first out: the next task goes to the worker that ran the last one, which has the
        # reward loaded (a FIFO queue would send each batch call to a colder worker, each importing it anew).
        self._idle: queue.LifoQueue[Worker] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._all: list[Worker] = []
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="rltk-reward")
        self.replaced = 0  # workers killed (timeouts, crashes) and replaced, over the pool's life
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        w = Worker(self.isolation)
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
            try:
                w.wait_ready()
            except WorkerDied:  # it could not start: a fresh one takes its place
                self.replaced += 1
                self._spawn()
                continue
            self._idle.put(w)

    def report(self) -> dict:
        """The isolation a worker of this pool got (``namespaces``, ``proc``, ``readonly``, ``memory_mb``,
        ``missing``: what the kernel refused); starts the workers if needed."""
        self.warm()
        with self._lock:
            return dict(next((w.report for w in self._all if w.ready), {}))

    def _next_idle(self, cancel: threading.Event | None) -> Worker | None:
        while True:
            try:
                return self._idle.get(timeout=CANCEL_POLL_S) if cancel is not None else self._idle.get()
            except queue.Empty:
                if cancel.is_set():  # type: ignore[union-attr]
                    return None

    def _run_chunk(self, target: Target, items: list, timeout_s: float, cancel: threading.Event | None = None,
                   loaded: threading.Event | None = None) -> list[Outcome]:
        results: list[Outcome] = []
        dead_before_start = 0
        while len(results) < len(items):
            w = None if cancel is not None and cancel.is_set() else self._next_idle(cancel)
            if w is None:
                results += [Outcome(False, error="cancelled", cancelled=True) for _ in items[len(results):]]
                break
            try:
                got = w.run_chunk(target, items[len(results):], timeout_s, cancel, loaded)
            except Cancelled:  # given up while the worker was starting: it stays, for the next task
                self._idle.put(w)
                continue
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

    def run(self, target: Target, items: list[tuple[tuple, dict]], timeout_s: float,
            chunk: int | None = None, cancel: threading.Event | None = None) -> list[Outcome]:
        """One Outcome per ``(args, kwargs)`` item, in order. ``chunk``: items per task (default: an
        even share per worker); 1 hands each item to the next free worker, so a hanging item holds
        up only its own worker while the others go on. Setting ``cancel`` gives up what is still
        running or waiting (``Outcome.cancelled``; the workers running it are killed and replaced)."""
        if not items:
            return []
        per = chunk or max(1, min(MAX_CHUNK, -(-len(items) // self.size)))
        chunks = [items[i:i + per] for i in range(0, len(items), per)]
        if len(chunks) == 1:
            return self._run_chunk(target, chunks[0], timeout_s, cancel)
        futures = [self._threads.submit(self._run_chunk, target, c, timeout_s, cancel) for c in chunks]
        return [o for f in futures for o in f.result()]

    def submit(self, target: Target, items: list[tuple[tuple, dict]], timeout_s: float,
               cancel: threading.Event | None = None, loaded: threading.Event | None = None) -> Future:
        """``run`` in the background on one worker: a Future of the Outcomes. ``loaded`` is set once a
        worker has started and loaded the target (or the call has ended), when the items' clocks start."""
        fut = self._threads.submit(self._run_chunk, target, items, timeout_s, cancel, loaded)
        if loaded is not None:
            fut.add_done_callback(lambda _: loaded.set())
        return fut

    def close(self) -> None:
        """Kill every worker (and what it spawned); ``get_pool`` then starts a fresh pool."""
        self.closed = True
        with self._lock:
            workers, self._all = self._all, []
        for w in workers:
            w.kill()
        self._threads.shutdown(wait=False)


_POOLS: dict[tuple[str, Isolation], SandboxPool] = {}
_POOLS_LOCK = threading.Lock()
VERIFY_MEMORY_MB = 4096  # math verification workers: a sympy memory bomb ends in MemoryError, not swap


def get_pool(kind: str, size: int = 1, isolation: Isolation | None = None) -> SandboxPool:
    """The process-wide pool of ``kind`` ("verify": built-in math checks; "user": user rewards) and
    ``isolation`` (default: 4 GiB, no network, no extra environment), grown to at least ``size`` workers."""
    iso = isolation or Isolation(memory_mb=VERIFY_MEMORY_MB)
    with _POOLS_LOCK:
        pool = _POOLS.get((kind, iso))
        if pool is None or pool.closed:
            pool = _POOLS[(kind, iso)] = SandboxPool(size, iso)
        elif pool.size < size:
            pool.grow(size)
        return pool


def close_pool(kind: str, isolation: Isolation) -> None:
    """Close the pool of ``kind`` and ``isolation`` if one runs (the next ``get_pool`` starts afresh)."""
    with _POOLS_LOCK:
        pool = _POOLS.pop((kind, isolation), None)
    if pool is not None:
        pool.close()


def in_worker() -> bool:
    """True inside a sandbox worker, where the parent's deadline already bounds all work."""
    return os.environ.get("RLTK_REWARD_WORKER") == "1"


@atexit.register
def _close_pools() -> None:
    for pool in list(_POOLS.values()):
        pool.close()
    _POOLS.clear()
