"""The decode loop's growing KV cache holds exactly what transformers' DynamicCache holds, without copying the
cache at each step."""

import torch
from transformers.cache_utils import DynamicLayer

from rltk.policy.hf import cache_kwarg
from rltk.policy.kv_cache import GrowingLayer, growing_cache
from rltk.policy.tiny import tiny_policy


def _kv(b: int, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(b, 3, n, 8, generator=g), torch.randn(b, 3, n, 8, generator=g)


def test_growing_layer_matches_dynamic_layer_through_prefill_repeat_select_and_steps():
    g = torch.Generator().manual_seed(0)
    ref, ours = DynamicLayer(), GrowingLayer(reserve=6)
    ops = [("update", _kv(1, 5, g)), ("repeat", 4), ("update", _kv(4, 3, g)), ("repeat", 2), ("update", _kv(8, 1, g)),
           ("select", torch.tensor([0, 2, 3, 5, 7])), ("update", _kv(5, 1, g)), ("update", _kv(5, 1, g)),
           ("select", torch.tensor([1, 4])), ("update", _kv(2, 1, g)), ("update", _kv(2, 4, g)),  # overflows
           ("crop", -3), ("update", _kv(2, 1, g)), ("reorder", torch.tensor([1, 0])), ("update", _kv(2, 2, g)),
           ("reset", None), ("update", _kv(3, 2, g)), ("update", _kv(3, 1, g))]
    act = {"repeat": "batch_repeat_interleave", "select": "batch_select_indices", "crop": "crop", "reorder": "reorder_cache",
           "reset": "reset"}
    for op, arg in ops:
        for layer in (ref, ours):
            out = layer.update(*arg) if op == "update" else getattr(layer, act[op])(*([] if arg is None else [arg]))
            if op == "update":
                assert torch.equal(out[0], layer.keys) and torch.equal(out[1], layer.values)
        assert ours.get_seq_length() == ref.get_seq_length(), op
        if ref.get_seq_length():
            assert torch.equal(ours.keys, ref.keys) and torch.equal(ours.values, ref.values), op


def test_a_decode_step_writes_in_place_until_the_reserve_is_used():
    g = torch.Generator().manual_seed(1)
    layer = GrowingLayer(reserve=3)
    layer.update(*_kv(2, 4, g))
    buffer = layer.keys.data_ptr()
    for _ in range(3):  # within the reserve: the same buffer, no copy of what is cached
        layer.update(*_kv(2, 1, g))
        assert layer.keys.data_ptr() == buffer
    layer.update(*_kv(2, 1, g))  # past it: one reallocation, the contents kept
    assert layer.keys.data_ptr() != buffer and layer.get_seq_length() == 8


def test_growing_cache_replaces_every_full_attention_layer_and_decodes_like_the_dynamic_cache():
    from transformers import DynamicCache

    model = tiny_policy().model
    hf = model.get_base_model() if hasattr(model, "get_base_model") else model
    cache = growing_cache(hf.config, reserve=8)
    assert cache.layers and all(isinstance(layer, GrowingLayer) for layer in cache.layers)
    ids = torch.randint(0, hf.config.vocab_size, (2, 6), generator=torch.Generator().manual_seed(2))
    logits = []
    for c in (cache, DynamicCache(config=hf.config)):
        with torch.no_grad():
            out = hf(input_ids=ids, use_cache=True, **{cache_kwarg(hf): c})
            step = hf(input_ids=ids[:, -1:], use_cache=True, **{cache_kwarg(hf): c})
        logits.append((out.logits, step.logits))
    assert torch.allclose(logits[0][0], logits[1][0], atol=1e-5) and torch.allclose(logits[0][1], logits[1][1], atol=1e-5)
