"""A LoRA adapter that changes what a model computes: a fresh one has B = 0 and changes nothing."""

from __future__ import annotations

import torch


def random_lora_b(model: torch.nn.Module, scale: float, seed: int = 0) -> None:
    """Set every LoRA B matrix of ``model`` to seeded N(0, scale^2) values (in parameter order)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
