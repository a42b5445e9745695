"""Adapters rltk saves are portable: they name their base by hub id (or absolute folder), carry their tokenizer,
and load with peft alone; rltk itself maps the embedded model's hub id back to the embedded copy (offline)."""

from __future__ import annotations

import doctest
import json

import pytest
import torch
from deploy_helpers import bpe_llama, greedy_tokens, perturbed_adapter

import rltk.policy.sources as sources
from rltk.policy import adapter_base, load_policy, portable_name, spec_for_base, tiny_policy


def test_the_names_doctests():
    result = doctest.testmod(sources)
    assert result.failed == 0 and result.attempted >= 2


def test_names_round_trip(tmp_path):
    hub = sources.ALIASES["smollm2-135m"].hub_id
    assert portable_name("smollm2-135m") == hub == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert spec_for_base(hub) == "smollm2-135m"  # rltk loads the embedded copy it trained on, offline
    assert portable_name("tiny-random") == spec_for_base("tiny-random") == "tiny-random"
    assert portable_name(str(tmp_path / ".." / tmp_path.name)) == str(tmp_path.resolve())  # a folder: absolute


def test_an_adapter_on_a_local_base_loads_with_peft_alone(tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    base = bpe_llama(tmp_path / "base")
    adapter = perturbed_adapter(str(base), tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base.resolve()) == adapter_base(adapter)
    tok = AutoTokenizer.from_pretrained(str(adapter))  # the tokenizer travels with the adapter
    ours = load_policy(spec_for_base(adapter_base(adapter)), quant="none", adapter=str(adapter), trainable=False)
    assert tok.get_vocab() == ours.tokenizer.get_vocab() and tok.chat_template == ours.tokenizer.chat_template
    peft_only = AutoPeftModelForCausalLM.from_pretrained(str(adapter), dtype=torch.float32).eval()
    expect = greedy_tokens(ours.model, tok, max_new_tokens=6)
    assert greedy_tokens(peft_only, tok, max_new_tokens=6) == expect
    bare = load_policy(str(base), quant="none", lora=None, trainable=False)
    assert greedy_tokens(bare.model, tok, max_new_tokens=6) != expect  # the adapter changes what the model says


def test_tiny_random_adapters_name_their_base_and_keep_the_tokenizer(tmp_path):
    adapter = perturbed_adapter("tiny-random", tmp_path / "adapter", prompt={"system_prompt": "S"})
    assert adapter_base(adapter) == "tiny-random"
    assert {"tokenizer.json", "tokenizer_config.json", "rltk_prompt.json"} <= {p.name for p in adapter.iterdir()}
    again = load_policy(spec_for_base(adapter_base(adapter)), quant="none", adapter=str(adapter), trainable=False)
    assert again.tokenizer.get_vocab() == tiny_policy().tokenizer.get_vocab()


@pytest.mark.slow
def test_an_embedded_model_adapter_names_the_hub_id_and_loads_offline(tmp_path, monkeypatch):
    from peft import PeftConfig, PeftModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    adapter = perturbed_adapter("smollm2-135m", tmp_path / "adapter", scale=0.02)
    assert PeftConfig.from_pretrained(str(adapter)).base_model_name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct"
    ours = load_policy(spec_for_base(adapter_base(adapter)), quant="none", adapter=str(adapter), trainable=False)
    assert ours.spec == "smollm2-135m"
    base = load_policy("smollm2-135m", quant="none", lora=None, trainable=False)
    peft_model = PeftModel.from_pretrained(base.model, str(adapter)).eval()  # peft reads it onto the embedded base
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(adapter))
    assert greedy_tokens(peft_model, tok, max_new_tokens=8) == greedy_tokens(ours.model, ours.tokenizer, max_new_tokens=8)
