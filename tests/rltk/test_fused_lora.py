"""The fused LoRA forward (rltk.policy.fused): same outputs and gradients as peft's own path, peft's path wherever the
fast one does not apply."""

from __future__ import annotations

import pytest
import torch

from adapter_helpers import random_lora_b  # tests/rltk
from rltk.policy.base import LoraSettings
from rltk.policy.fused import fuse_lora_forward
from rltk.policy.memory import dense_frozen_base
from rltk.policy.tiny import tiny_policy

IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])


def _policy(quant: str = "none", dtype: torch.dtype = torch.float32):
    pol = tiny_policy(quant=quant, lora=LoraSettings(r=4, dropout=0.0))
    random_lora_b(pol.model, 0.1)  # so the adapter matters
    dense_frozen_base(pol.model, dtype)
    return pol


def _run(model, fused_layers: list, fused: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    for m, fwd in fused_layers:
        m.forward = fwd if fused else m._peft_forward
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=IDS).logits  # [2, 6, V]
    loss = logits.float().logsumexp(-1).sum()
    loss.backward()
    return logits.detach().float(), [p.grad.detach().clone() for p in model.parameters() if p.requires_grad]


def _fuse(model) -> list:
    n = fuse_lora_forward(model)
    assert n > 0 and fuse_lora_forward(model) == 0  # idempotent
    return [(m, m.forward) for m in model.modules() if hasattr(m, "_peft_forward")]


def test_fused_equals_peft_in_fp32():
    pol = _policy()
    layers = _fuse(pol.model)
    assert len(layers) == sum(1 for n, _ in pol.model.named_modules() if n.endswith("lora_A"))
    want, want_g = _run(pol.model, layers, fused=False)
    got, got_g = _run(pol.model, layers, fused=True)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_g, want_g):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert any(bool(g.abs().sum() > 0) for g in got_g)


def test_fused_under_bf16_autocast_is_as_accurate_as_peft():
    """bf16 rounds differently inside one GEMM than in peft's separate passes: both are held to the fp32 result."""
    ref = _policy()
    _, exact = _run(ref.model, [], fused=False)
    pol = _policy(dtype=torch.bfloat16)
    layers = _fuse(pol.model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want, want_g = _run(pol.model, layers, fused=False)
        got, got_g = _run(pol.model, layers, fused=True)
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    err = lambda grads: sum(float((g - e).norm() / e.norm()) for g, e in zip(grads, exact)) / len(exact)  # noqa: E731
    assert err(got_g) <= 1.25 * err(want_g) + 1e-3, (err(got_g), err(want_g))


def test_disabled_and_quantized_layers_take_peft_path():
    pol = _policy()
    layers = _fuse(pol.model)
    with torch.no_grad(), pol.model.disable_adapter():  # adapters off: the base alone, as peft gives it
        off = pol.model(input_ids=IDS).logits
    with torch.no_grad():
        on = pol.model(input_ids=IDS).logits
        for m, _ in layers:
            m.forward = m._peft_forward
        with pol.model.disable_adapter():
            off_peft = pol.model(input_ids=IDS).logits
    torch.testing.assert_close(off, off_peft)
    assert not torch.allclose(on, off)  # the adapter does change the output when enabled


def test_quantized_base_keeps_peft_path():
    pytest.importorskip("bitsandbytes")
    pol = tiny_policy(quant="nf4", lora=LoraSettings(r=4))  # 4-bit base, not made dense
    fuse_lora_forward(pol.model)
    layer = next(m for m in pol.model.modules() if hasattr(m, "_peft_forward"))
    calls = []
    real = layer._peft_forward
    layer._peft_forward = lambda *a, **k: calls.append(1) or real(*a, **k)
    with torch.no_grad():
        pol.model(input_ids=IDS)
    assert calls  # a bitsandbytes base layer is not updated in place


@pytest.mark.parametrize("rows", [1, 5, 32, 64, 65])
def test_wide_frozen_head_in_slices_equals_one_gemm(rows):
    """A wide frozen layer (an LM head) at decode-sized inputs runs as 2048-row slices of its weight: same result."""
    from rltk.policy import memory

    gen = torch.Generator().manual_seed(0)
    head = memory.FrozenLinear(torch.randn(8 * memory.HEAD_CHUNK + 100, 24, generator=gen), None)
    x = torch.randn(1, rows, 24, generator=gen)
    with torch.no_grad():
        assert memory._chunk_rows(x, head.weight) == (rows <= 64)
        torch.testing.assert_close(head(x), torch.nn.functional.linear(x, head.weight), rtol=1e-5, atol=1e-5)
    x.requires_grad_(True)
    assert not memory._chunk_rows(x, head.weight)  # training takes the one GEMM (autograd through it)
