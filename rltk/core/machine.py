"""What CPU this is: its model name and instruction-set flags (from /proc/cpuinfo), for benchmark headers and
for choosing a compute dtype by measurement (:func:`rltk.policy.devices.compute_dtype`)."""

from __future__ import annotations

import functools

# the flags that decide how fast bf16 matrix work is on a CPU (AMX tiles, AVX-512 BF16, AVX-512, AVX2)
BF16_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


@functools.cache
def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.split(":", 1)[0].strip() == name), "")
    except OSError:
        return ""


def cpu_model() -> str:
    """``model name`` of /proc/cpuinfo (``unknown`` where it cannot be read)."""
    return _cpuinfo_field("model name") or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (empty where /proc/cpuinfo cannot be read)."""
    return frozenset(_cpuinfo_field("flags").split())


def matrix_flags() -> str:
    """The flags of :data:`BF16_FLAGS` this CPU has, comma-separated (``none`` if none), e.g. ``avx2``."""
    have = cpu_flags()
    return ",".join(f for f in BF16_FLAGS if f in have) or "none"


__all__ = ["BF16_FLAGS", "cpu_flags", "cpu_model", "matrix_flags"]
