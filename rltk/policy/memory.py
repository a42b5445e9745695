"""Model and process memory: frozen base weights held dense at the compute precision (``FrozenLinear``,
``dense_frozen_base``, ``contiguous_head``), peft's input casts skipped, and glibc heap pages given back."""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import torch

from rltk.policy.hf import hf_model


class FrozenLinear(torch.nn.Linear):
    """A frozen linear layer stored at the compute precision (bf16 or fp32, :func:`rltk.policy.devices.compute_dtype`). Under autocast it is a plain
    ``nn.Linear`` (the same numerics as autocast casting an fp32 weight); without autocast it casts
    its input to the weight's dtype and the output back, so the policy still runs outside autocast."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        if bias is not None:
            self.bias = torch.nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2 and not x.is_contiguous():
            # e.g. the head on hidden[:, -k:]: torch.matmul cannot fold a non-contiguous batch into one mm and,
            # for a weight without grad, expands the weight per batch row instead (measured: +3.5 GB and 3x
            # slower for a 64-prompt prefill through SmolLM2's 49k-token head)
            x = x.contiguous()
        if torch.is_autocast_enabled(x.device.type) or x.dtype == self.weight.dtype:
            if _chunk_rows(x, self.weight):
                return _chunked_linear(x, self.weight, self.bias)
            return torch.nn.functional.linear(x, self.weight, self.bias)
        out = torch.nn.functional.linear(x.to(self.weight.dtype), self.weight, self.bias)
        return out.to(x.dtype)


HEAD_CHUNK = 2048  # output rows per GEMM for a wide layer at decode-sized inputs


def _chunk_rows(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """A wide layer (an LM head: 49k outputs) on few rows, on CPU, without gradient: MKL runs [<=64, 576] x
    [576, 49152] at ~45 GFLOP/s here but ~70 in 2048-row slices of the weight (each slice stays in cache while the
    rows stream past it; measured on an AVX2 EPYC, m = 16 and 32)."""
    return (x.device.type == "cpu" and weight.shape[0] >= 8 * HEAD_CHUNK and x.numel() // x.shape[-1] <= 64
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and x.dtype == weight.dtype)


def _chunked_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    flat = x.reshape(-1, x.shape[-1])  # [m, in]
    out = torch.empty((flat.shape[0], weight.shape[0]), dtype=x.dtype, device=x.device)  # [m, out]
    for i in range(0, weight.shape[0], HEAD_CHUNK):
        torch.mm(flat, weight[i:i + HEAD_CHUNK].t(), out=out[:, i:i + HEAD_CHUNK])
    if bias is not None:
        out += bias
    return out.view(*x.shape[:-1], weight.shape[0])


def contiguous_head(model: Any) -> None:
    """Give a frozen output head :class:`FrozenLinear`'s contiguous-input path (same weight tensor, no copy)."""
    head = model.get_output_embeddings()
    if isinstance(head, torch.nn.Linear) and not isinstance(head, FrozenLinear) and not head.weight.requires_grad:
        model.set_output_embeddings(FrozenLinear(head.weight.data, None if head.bias is None else head.bias.data))


def dense_frozen_base(model: Any, dtype: torch.dtype = torch.bfloat16) -> int:
    """Hold every frozen linear weight of the base as a dense ``dtype`` tensor (CPU training).

    bitsandbytes 4-bit (NF4) layers are dequantized once, to exactly the weights QLoRA computes with;
    fp32 weights are stored at the precision autocast would cast them to at every forward. A tied
    output embedding gets its own copy at ``dtype`` (none when that is its own) (the input embedding stays as it is). The other frozen tensors
    (embeddings, norms) are copied out of the checkpoint's memory map, so the map is released: its
    pages otherwise stay resident (~0.5 GB of RSS for SmolLM2-135M). Returns layers converted.
    """
    from peft.tuners.lora import LoraLayer

    converted = 0
    hf = hf_model(model)
    out_emb = hf.get_output_embeddings()
    if (isinstance(out_emb, torch.nn.Linear) and not isinstance(out_emb, FrozenLinear) and not out_emb.weight.requires_grad
            and out_emb.weight is hf.get_input_embeddings().weight):
        # tied input/output embeddings: the input side stays fp32 (the residual stream starts there); the head
        # gets its own bf16 copy, else autocast casts (and keeps for backward) the whole matrix at every forward
        hf.set_output_embeddings(FrozenLinear(out_emb.weight.data.to(dtype), None))
        converted += 1
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            w = getattr(child, "weight", None)
            if w is None or w.requires_grad or isinstance(child, (LoraLayer, FrozenLinear)):
                continue
            if w.__class__.__name__ == "Params4bit":
                import bitsandbytes.functional as bnbF

                data, state = w.data, w.quant_state
                if getattr(state, "packing_format_for_cpu", False):  # bnb repacked it for its CPU kernel
                    data, state = bnbF._convert_weight_packed_for_cpu_inverse(data, state)
                weight = bnbF.dequantize_4bit(data, state)
            elif isinstance(child, torch.nn.Linear) and w.dtype.is_floating_point:
                weight = w.data
            else:
                continue
            setattr(parent, name, FrozenLinear(weight.to(dtype), None if child.bias is None else child.bias.data.to(dtype)))
            converted += 1
    if converted:
        seen: set[int] = set()
        for t in list(model.parameters()) + list(model.buffers()):  # out of the memory-mapped checkpoint
            if not t.requires_grad and id(t) not in seen:
                seen.add(id(t))
                t.data = t.data.clone()
        release_memory()
    return converted


def no_input_casts(model: Any) -> Any:
    """Under autocast peft's fp32 copy of every LoRA layer's input is pure cost (autocast casts it back to
    bf16 for the matmul; the copy is also kept for backward): skip it. Same numerics, less time and memory."""
    from peft.helpers import disable_input_dtype_casting

    return disable_input_dtype_casting(model)


def _glibc() -> Any:
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return None


def release_memory(collect: bool = True) -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so RSS reflects what is in use."""
    import gc

    if collect:
        gc.collect()
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
TRAIN_MMAP_THRESHOLD = 1 << 20
DECODE_MMAP_THRESHOLD = 64 << 20
_heap_lock = threading.Lock()
_heap_users = [0]  # decodes inside decode_heap now
_tuned = False  # tune_allocator ran: the threshold is fixed (glibc's dynamic one is off)


def tune_allocator() -> None:
    """glibc raises its mmap threshold after big blocks are freed, so later activation-sized tensors come
    from the heap and stay resident after the step; a fixed 1 MB threshold returns them to the OS on free
    (measured: ~0.3 GB less RSS between GRPO steps on SmolLM2-135M)."""
    global _tuned
    libc = _glibc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, TRAIN_MMAP_THRESHOLD)
        _tuned = True


@contextlib.contextmanager
def decode_heap() -> Iterator[None]:
    """While decoding, blocks up to 64 MB come from the heap, then the 1 MB threshold of :func:`tune_allocator` is
    back and the freed pages go to the OS. Each decode step allocates a few MB per layer (the KV cache grows by
    concatenation, logits): mmap'd, every one of them is faulted in page by page and unmapped again (measured on
    the main job's sampling: 10.96 vs 8.74 ms per token, 20% of decode time). Nothing to do unless
    :func:`tune_allocator` fixed the threshold (glibc's default one adapts by itself). Decodes running together on
    several threads (:mod:`rltk.policy.parallel`) share it: the threshold goes back when the last one ends."""
    libc = _glibc() if _tuned else None
    if libc is None or not hasattr(libc, "mallopt"):
        yield
        return
    with _heap_lock:
        _heap_users[0] += 1
        if _heap_users[0] == 1:
            libc.mallopt(M_MMAP_THRESHOLD, DECODE_MMAP_THRESHOLD)
    try:
        yield
    finally:
        with _heap_lock:
            _heap_users[0] -= 1
            last = _heap_users[0] == 0
            if last:
                libc.mallopt(M_MMAP_THRESHOLD, TRAIN_MMAP_THRESHOLD)
        if last:
            release_memory(collect=False)


__all__ = ["FrozenLinear", "contiguous_head", "decode_heap", "dense_frozen_base", "no_input_casts", "release_memory",
           "tune_allocator"]
