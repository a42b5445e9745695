"""Seeds: fixed mixes (never Python's randomised ``hash``) so every process derives the same seeds,
and the RNG state a checkpoint saves and a resume restores.

>>> step_seed(0, 3) == step_seed(0, 3) != step_seed(0, 4)
True
>>> row_seed(0, item=2, sample=1) == row_seed(0, 2, 1)
True
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
import torch


def step_seed(seed: int, step: int, draw: int = 0) -> int:
    """The sampling seed of draw ``draw`` of step ``step``: resumed runs sample exactly as uninterrupted ones."""
    return (seed * 1_000_003 + step * 1_009 + draw * 7_919 + 17) % (2**31 - 1)


def row_seed(seed: int, item: int, sample: int) -> int:
    """The generator seed of sample ``sample`` of eval item ``item``: independent of batch size and order."""
    return (seed * 1_000_003 + item * 9_176 + sample * 7_919 + 0x5EED) % (2**63 - 1)


def row_generators(seed: int, items: Sequence[int], samples: int, device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per completion, item-major: sample ``j`` of item ``i`` draws from ``row_seed(seed, i, j)``, so
    what a row draws depends on neither its batch nor the thread that decodes it (evals, rollouts)."""
    gens = []
    for i in items:
        for j in range(samples):
            g = torch.Generator(device=device)
            g.manual_seed(row_seed(seed, i, j))
            gens.append(g)
    return gens


def row_uniforms(gens: Sequence[torch.Generator], rows: Sequence[int]) -> torch.Tensor:
    """The next uniform in [0, 1) of each row in ``rows``, each from its own generator ``gens[row]``: ``[len(rows)]``."""
    return torch.cat([torch.rand(1, generator=gens[r]) for r in rows])


def capture_rng() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states, for a checkpoint."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


__all__ = ["capture_rng", "restore_rng", "row_seed", "step_seed"]
