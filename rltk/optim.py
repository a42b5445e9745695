"""The optimiser's settings, declared once: the ``sft:`` and ``grpo:`` sections both extend
:class:`OptimFields` (same YAML keys in both, each section with its own defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rltk.core.config import check_range


@dataclass(frozen=True)
class OptimFields:
    """AdamW on the LoRA parameters: learning rate and its schedule, clipping, micro-batching."""

    lr: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    max_grad_norm: float = 1.0  # 0 = no clipping
    micro_batch_size: int = 8  # sequences per forward/backward: bounds memory whatever the batch
    threads: int = 0  # micro-batches run forward/backward together on threads of their own (0: auto, rltk.policy.parallel)

    def __post_init__(self) -> None:
        check_range("lr", self.lr, low=0, low_open=True)
        check_range("weight_decay", self.weight_decay, low=0)
        for i, b in enumerate(self.adam_betas):
            check_range(f"adam_betas[{i}]", b, low=0, high=1, high_open=True)
        check_range("warmup_steps", self.warmup_steps, low=0)
        check_range("min_lr_ratio", self.min_lr_ratio, low=0, high=1)
        check_range("max_grad_norm", self.max_grad_norm, low=0)
        check_range("micro_batch_size", self.micro_batch_size, low=1)
        check_range("threads", self.threads, low=0)


__all__ = ["OptimFields"]
