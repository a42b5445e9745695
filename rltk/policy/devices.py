"""Where a policy runs and at what precision: the default device, the compute dtype, autocast.

On CUDA the compute dtype is bf16 (fp16 before Ampere). On a CPU it is **chosen by measurement**: bf16 matrix
work is 2-10x faster than fp32 where the CPU has AMX or AVX-512 BF16, and about 4x *slower* where it has
neither (AVX2 only: measured 7.5 vs 29 GFLOP/s for one SmolLM2 linear layer). :func:`compute_dtype_choice` times
both on the shapes of a small model's linear layers (about a second), once per CPU model, flags and torch
version, and keeps the result in ``cache_dir()/compute_dtype.json`` so every run on one machine computes alike.
``RLTK_CPU_DTYPE=bf16|fp32`` overrides it (``auto``, the default, measures). With fp32 there is no autocast
at all: the frozen base is held in fp32 and the sampling copy runs in fp32.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass

import torch

from rltk.core.errors import UserError
from rltk.core.machine import cpu_model, matrix_flags
from rltk.policy.sources import cache_dir

NAMES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
BF16_MARGIN = 1.25  # bf16 must be this much faster to be chosen: it costs precision
PROBE_SHAPES = ((256, 576, 1536), (16, 576, 1536))  # (tokens, in, out): a learner micro-batch and a decode batch


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@dataclass(frozen=True)
class DtypeChoice:
    """The CPU compute dtype and why: ``how`` is ``measured`` (now), ``cached`` (measured before on this CPU)
    or ``env`` (RLTK_CPU_DTYPE); the GFLOP/s figures are the probe's (0 when not measured)."""

    dtype: str  # "float32" or "bfloat16"
    how: str
    fp32_gflops: float = 0.0
    bf16_gflops: float = 0.0
    cpu: str = ""

    @property
    def torch_dtype(self) -> torch.dtype:
        return NAMES[self.dtype]

    def describe(self) -> str:
        """``float32 (measured: bf16 7.5 vs fp32 29.1 GFLOP/s)`` — one phrase for logs and benchmark headers."""
        if self.how == "env":
            return f"{self.dtype} (RLTK_CPU_DTYPE)"
        return f"{self.dtype} ({self.how}: bf16 {self.bf16_gflops:.1f} vs fp32 {self.fp32_gflops:.1f} GFLOP/s)"


def probe_gflops(dtype: torch.dtype, reps: int = 5) -> float:
    """GFLOP/s of ``F.linear`` in ``dtype`` over :data:`PROBE_SHAPES` (median of ``reps`` timings each)."""
    gen = torch.Generator().manual_seed(0)
    flops = seconds = 0.0
    for m, k, n in PROBE_SHAPES:
        x = torch.randn(m, k, generator=gen).to(dtype)
        w = torch.randn(n, k, generator=gen).to(dtype)
        torch.nn.functional.linear(x, w)  # warm-up (kernel selection, page faults)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.nn.functional.linear(x, w)
            times.append(time.perf_counter() - t0)
        flops += 2.0 * m * k * n
        seconds += statistics.median(times)
    return flops / max(seconds, 1e-9) / 1e9


def _probe_key() -> str:
    return f"{cpu_model()}|{matrix_flags()}|torch {torch.__version__}"


def measure_cpu_dtype(rounds: int = 3) -> DtypeChoice:
    """Time fp32 and bf16 alternately (``rounds`` each, best of each kept: a busy machine only slows a
    round down) and pick bf16 only if it is :data:`BF16_MARGIN` times faster."""
    fp32, bf16 = [], []
    for _ in range(rounds):
        fp32.append(probe_gflops(torch.float32))
        bf16.append(probe_gflops(torch.bfloat16))
    f, b = max(fp32), max(bf16)
    return DtypeChoice("bfloat16" if b >= BF16_MARGIN * f else "float32", "measured", round(f, 1), round(b, 1), cpu_model())


@functools.cache
def compute_dtype_choice() -> DtypeChoice:
    """The CPU compute dtype (see the module docstring): RLTK_CPU_DTYPE, else the cached or a new measurement."""
    env = os.environ.get("RLTK_CPU_DTYPE", "auto").strip().lower()
    if env != "auto":
        if env not in NAMES:
            raise UserError(f"RLTK_CPU_DTYPE={env!r}: use auto, bf16 or fp32")
        return DtypeChoice(str(NAMES[env]).removeprefix("torch."), "env", cpu=cpu_model())
    path, key = cache_dir() / "compute_dtype.json", _probe_key()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), dict):
        try:
            return DtypeChoice(**{**known[key], "how": "cached"})
        except TypeError:
            pass
    choice = measure_cpu_dtype()
    try:  # written whole and renamed into place: two processes measuring at once never leave half a file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({**(known if isinstance(known, dict) else {}), key: asdict(choice)}, indent=1) + "\n",
                       encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs the probe again next time
    return choice


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 on Ampere+ GPUs (fp16 before); on a CPU the measured choice (:func:`compute_dtype_choice`)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return compute_dtype_choice().torch_dtype
    return torch.float32


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to the compute dtype; none where that is fp32 (nothing to cast to)."""
    dtype = compute_dtype(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


__all__ = ["DtypeChoice", "autocast", "compute_dtype", "compute_dtype_choice", "default_device", "measure_cpu_dtype",
           "probe_gflops"]
