"""What every benchmark prints beside its figures: the CPU model and the cores/threads it ran on (the same
benchmark differs 2x between CPU types; compare figures only within one run), and this process's memory."""

from __future__ import annotations

import os

from rltk.core.machine import cpu_model, matrix_flags
from rltk.policy.devices import compute_dtype_choice


def machine_line() -> str:
    """``CPU: <model> (<matrix flags>), N cores (M usable), load average L; compute dtype ...`` — one line for a
    benchmark's header."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"CPU: {cpu_model()} ({matrix_flags()}), {os.cpu_count()} cores ({usable} usable), load average "
            f"{os.getloadavg()[0]:.2f}; compute dtype {compute_dtype_choice().describe()}")


def rss_mb(field: str = "VmHWM") -> float:
    """A memory figure of this process from /proc/self/status in MB (``VmHWM``: peak RSS; ``VmRSS``: now)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


__all__ = ["cpu_model", "machine_line", "rss_mb"]
