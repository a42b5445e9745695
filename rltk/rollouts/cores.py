"""Pinning a process to CPU cores (``distributed.learner_cores`` / ``distributed.worker_cores``).

What ``taskset -a -p`` does, from inside: every thread of the process gets the core set (``sched_setaffinity``
on a thread id sets that one thread; threads started later inherit it) and torch runs as many intra-op threads
as the set has cores. A learner and its rollout workers on one machine then never share a core, which is also
how a 2-core machine simulates two 1-core machines (``benchmarks/bench_distributed.py --pin``).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import torch

from rltk.core.errors import UserError


def _set_threads_affinity(cores: set[int]) -> None:
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except ProcessLookupError:  # the thread ended meanwhile
            pass


def pin_process(cores: Sequence[int], what: str) -> Callable[[], None]:
    """Pin this process (all its threads) to ``cores`` and set torch's thread count to match; returns a
    function that puts back the previous core set and thread count. ``what`` names the setting in errors
    (e.g. ``distributed.learner_cores``): a core this machine lacks, or one the process may not use (a
    cgroup's cpuset), is a :class:`UserError`."""
    wanted = set(int(c) for c in cores)
    n = os.cpu_count() or 1
    missing = sorted(c for c in wanted if not 0 <= c < n)
    if not wanted or missing:
        raise UserError(f"{what}: {'no cores given' if not wanted else f'core {missing[0]} is not on this machine'} "
                        f"(it has cores 0-{n - 1})")
    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    try:
        _set_threads_affinity(wanted)
    except OSError as e:
        _set_threads_affinity(before)
        raise UserError(f"{what}: this process may not run on cores {sorted(wanted)} ({e.strerror}); "
                        f"it may use {sorted(before)}") from None
    torch.set_num_threads(len(wanted))

    def restore() -> None:
        _set_threads_affinity(before)
        torch.set_num_threads(threads)

    return restore


def thread_cores() -> list[list[int]]:
    """The core set of each thread of this process (for tests and reports)."""
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            out.append(sorted(os.sched_getaffinity(int(tid))))
        except ProcessLookupError:
            pass
    return out


__all__ = ["pin_process", "thread_cores"]
