"""LoRA layers' forward fused for training: ``base(x)`` then ``addmm_`` of the low-rank update into it, in place.

peft computes ``result + lora_B(lora_A(dropout(x))) * scaling``: two passes over the ``[tokens, out]`` output in the
forward (the scale, the add) and one more in the backward (the scale's gradient), for every adapted layer. Folding
the scale into ``alpha`` of one in-place ``addmm_`` on the base output does the same arithmetic in the GEMM itself:
``out += scaling * (dropout(x) @ A^T) @ B^T``. Autograd is exact: the base output is not saved by the base
matmul's backward (it keeps ``x`` and the weight), so updating it in place is allowed.

Only the plain case takes the fused path: a dense base layer (an ``nn.Linear`` with an ordinary weight, e.g.
:class:`rltk.policy.memory.FrozenLinear` after :func:`~rltk.policy.memory.dense_frozen_base`; a bitsandbytes 4-bit
or 8-bit base keeps peft's path and its defensive copy), one active vanilla adapter (no DoRA or other variant),
adapters enabled and not merged, no per-call adapter names. Anything else runs peft's own forward.
peft's 4-bit LoRA layer also copies the base output before adding to it; on a dense base the fused path skips that.
"""

from __future__ import annotations

import types
from typing import Any

import torch


def _fused_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    active = [a for a in self.active_adapters if a in self.lora_A]
    base = self.base_layer
    if (args or kwargs or not isinstance(base, torch.nn.Linear) or type(base.weight) is not torch.nn.Parameter
            or self.disable_adapters or self.merged or len(active) != 1 or active[0] in self.lora_variant
            or self.lora_B[active[0]].bias is not None):
        return self._peft_forward(x, *args, **kwargs)
    key = active[0]
    out = base(x)  # [..., out]
    if not out.is_contiguous():  # cannot be updated in place through a flat view: peft's path
        return self._peft_forward(x, *args, **kwargs)
    a, b = self.lora_A[key].weight, self.lora_B[key].weight  # [r, in], [out, r]
    h = torch.nn.functional.linear(self.lora_dropout[key](x), a)  # [..., r] (autocast: its dtype)
    flat = out.view(-1, out.shape[-1])  # [N, out], shares out's storage
    flat.addmm_(h.reshape(-1, h.shape[-1]).to(out.dtype), b.t().to(out.dtype), alpha=float(self.scaling[key]))
    return out


def fuse_lora_forward(model: torch.nn.Module) -> int:
    """Give every peft LoRA ``Linear`` of ``model`` the fused forward (idempotent); returns the layers changed."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    kinds = [LoraLinear]
    try:
        from peft.tuners.lora.bnb import Linear4bit, Linear8bitLt

        kinds += [Linear4bit, Linear8bitLt]
    except ImportError:  # peft without bitsandbytes
        pass
    changed = 0
    for module in model.modules():
        if type(module) in kinds and not hasattr(module, "_peft_forward"):
            module._peft_forward = module.forward
            module.forward = types.MethodType(_fused_forward, module)
            changed += 1
    return changed


__all__ = ["fuse_lora_forward"]
