"""Work on several threads of one process (:func:`run_threads`): decoding (evals, rollouts: each thread decodes its
share of a batch's rows) and the learner's micro-batches (each thread runs one forward and backward), every thread
with its own torch intra-op threads, all of them on the one copy of the weights.

Why: the work is many GEMMs of a few to a few hundred rows and many small ops. One intra-op team of two threads
hardly scales on them, two independent threads do: measured on a 2-core AVX2 EPYC, [m, 576] x [576, 1536] in fp32
ran at 42 / 69 / 84 GFLOP/s (m = 8 / 32 / 256) on one thread with an intra-op team of 2, and at 72 / 92 / 126
GFLOP/s together on two threads with an intra-op team of 1 each. torch releases the GIL inside every op, so the
threads overlap all but the Python between ops. ``benchmarks/bench_threads.py`` measures whole decodes and GRPO
learner steps.

A thread's intra-op thread count is its own (OpenMP's is per thread), so the caller's count is untouched.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. a container's cpuset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_count(device: torch.device, requested: int = 0) -> int:
    """How many threads share the work: ``requested`` when > 0; else (``0`` = auto) on CPU one per usable core
    the process's intra-op threads may use, at most 2 (measured on 2 cores; more threads fight over the GIL
    between ops), and 1 on a GPU (one stream of kernels)."""
    if requested > 0:
        return requested
    if device.type != "cpu":
        return 1
    return max(1, min(2, usable_cores(), torch.get_num_threads()))


def even_shares(n: int, most: int, threads: int) -> list[range]:
    """``n`` items cut into shares of at most ``most`` (what one thread runs at once), their count a multiple of
    ``threads`` and their sizes within one of each other, so no thread is left alone with a last small share while
    the others wait (300 eval prompts, 128 a thread: four shares of 75, not 128 + 128 + 44).

    >>> [len(r) for r in even_shares(300, 128, 2)], [len(r) for r in even_shares(11, 16, 2)], even_shares(3, 8, 1)
    ([75, 75, 75, 75], [6, 5], [range(0, 3)])
    """
    if n <= 0:
        return []
    k = min(n, threads * -(-n // max(1, most * threads)))  # rounds of `threads` shares
    size, extra = divmod(n, k)
    bounds = [0]
    for i in range(k):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def run_threads(jobs: Sequence[Callable[[], T]], threads: int) -> list[T]:
    """Run ``jobs`` on ``threads`` threads (each takes the next job when it is free) and return their results in
    job order. Each thread runs torch ops with ``intra-op threads // threads`` (at least 1) threads of its own.
    The first error a job raises is raised here, after every thread stopped (the others take no new job).
    With one thread, or one job, the jobs run in the calling thread, as a plain loop would run them."""
    if threads <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    per_thread = max(1, torch.get_num_threads() // threads)
    results: list[T | None] = [None] * len(jobs)
    errors: list[BaseException] = []
    lock = threading.Lock()
    next_job = [0]
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
    casts = [(d, torch.get_autocast_dtype(d)) for d in ("cpu", "cuda") if torch.is_autocast_enabled(d)]

    def worker() -> None:
        torch.set_num_threads(per_thread)
        with contextlib.ExitStack() as modes:  # grad, inference and autocast modes are per thread: carry them over
            modes.enter_context(torch.inference_mode(inference))
            modes.enter_context(torch.set_grad_enabled(grad))
            for dev, dtype in casts:
                modes.enter_context(torch.autocast(dev, dtype=dtype))
            while True:
                with lock:
                    if errors or next_job[0] >= len(jobs):
                        return
                    k = next_job[0]
                    next_job[0] += 1
                try:
                    results[k] = jobs[k]()
                except BaseException as e:  # noqa: BLE001 -- re-raised in the caller
                    with lock:
                        errors.append(e)
                    return

    pool = [threading.Thread(target=worker, name=f"rltk-work-{i}", daemon=True)
            for i in range(min(threads, len(jobs)))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    return results  # type: ignore[return-value]


__all__ = ["even_shares", "run_threads", "thread_count", "usable_cores"]
