"""Pure helpers of the Ray backend: how a step's prompts are split into shares, their seeds, the
checks on what comes back, the adapter files shipped to workers, one-line error texts.

>>> split_contiguous(7, 3)
[(0, 3), (3, 5), (5, 7)]
>>> split_contiguous(2, 4)
[(0, 1), (1, 2)]
>>> shard_seed(11, 0)
11
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from rltk.core.errors import UserError
from rltk.rollouts.worker import PromptRequest, RolloutGroup


def split_contiguous(n: int, parts: int) -> list[tuple[int, int]]:
    """``[start, end)`` of at most ``parts`` contiguous, non-empty shares of ``n`` items (earlier ones get the rest)."""
    if parts <= 0:
        raise ValueError(f"parts must be positive, got {parts}")
    base, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        end = start + base + (1 if k < extra else 0)
        if end > start:
            out.append((start, end))
        start = end
    return out


def shard_seed(step_seed: int, offset: int) -> int:
    """Seed for the share that starts at ``offset`` of a step's requests: the step seed for the first share."""
    if offset == 0:
        return int(step_seed)
    return int(np.random.SeedSequence([int(step_seed) & (2**63 - 1), int(offset)]).generate_state(1, np.uint32)[0])


def state_nbytes(state: dict[str, torch.Tensor]) -> int:
    """Bytes of a tensor dict (what one weight sync moves)."""
    return sum(t.numel() * t.element_size() for t in state.values())


def check_groups(groups: Sequence[RolloutGroup], requests: Sequence[PromptRequest], who: str) -> None:
    """Exactly one group per request, in request order; anything else is a bug in the worker, never silently fixed."""
    got = [g.index for g in groups]
    want = [r.index for r in requests]
    if got != want:
        raise RuntimeError(f"{who} returned groups for prompts {got[:8]}... but was asked for {want[:8]}... "
                           f"({len(got)} groups for {len(want)} requests)")


ADAPTER_FILES_MAX_BYTES = 2**30  # a LoRA adapter folder is MBs; refuse to ship something that is clearly not one


def read_adapter_folder(path: str) -> dict[str, bytes]:
    """The files of a peft adapter folder (top level only), to ship to workers that may not share the driver's disk."""
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise UserError(f"adapter folder {path} has no adapter_config.json")
    files = {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}
    size = sum(len(b) for b in files.values())
    if size > ADAPTER_FILES_MAX_BYTES:
        raise UserError(f"adapter folder {path} holds {size / 2**20:.0f} MiB of files; expected a LoRA adapter")
    return files


def raise_user_error_from_init(e: BaseException) -> None:
    """An actor whose constructor raised UserError (a bad model spec, a missing adapter) reports it as one line."""
    if not getattr(e, "actor_init_failed", False):
        return
    prefix = f"{UserError.__module__}.{UserError.__qualname__}: "
    for line in reversed(str(getattr(e, "error_msg", "") or e).splitlines()):
        if line.startswith(prefix):
            raise UserError(f"a rollout worker could not start: {line[len(prefix):]}") from None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def fmt_resources(res: dict[str, float]) -> str:
    skip = ("node:", "memory", "object_store_memory", "accelerator_type")
    keep = {k: v for k, v in res.items() if not k.startswith(skip)}
    return ", ".join(f"{k}={v:g}" for k, v in sorted(keep.items())) or "nothing"
