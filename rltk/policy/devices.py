"""Where a policy runs and at what precision: the default device, the compute dtype, autocast."""

from __future__ import annotations

import contextlib

import torch


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 where it is fast: Ampere+ GPUs, and CPUs (measured faster than fp32 for LoRA here)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=compute_dtype(device))


__all__ = ["autocast", "compute_dtype", "default_device"]
