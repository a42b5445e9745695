"""The policy floor: loading a model (+ LoRA + tokenizer), its adapters, memory helpers, the dense sampling
copy and THE decode loop. Imports only ``rltk.core`` and third-party libraries.

Modules: :mod:`.devices` (device, dtype, autocast), :mod:`.sources` (aliases, cache, GGUF, resolve_source),
:mod:`.base` (settings, Policy, building steps), :mod:`.tiny` (the tiny test model), :mod:`.loading`
(``load_policy``), :mod:`.adapters` (LoRA tensors, portable adapter folders), :mod:`.memory`, :mod:`.sampler` (``DenseSampler``),
:mod:`.hf` (the model under peft, KV-cache argument), :mod:`.decode` (the decode loop).
"""

from rltk.policy.adapters import PROMPT_FILE, adapter_base, footprint_bytes, load_trainable_state, read_prompt, save_adapter, trainable_state
from rltk.policy.base import LoraSettings, ModelConfig, Policy, Quant, attach_lora, prepare_tokenizer
from rltk.policy.decode import Decoded, Picker, decode, eos_token_ids
from rltk.policy.devices import autocast, compute_dtype, compute_dtype_choice, default_device
from rltk.policy.hf import cache_kwarg, hf_model
from rltk.policy.loading import load_policy, policy_from_config
from rltk.policy.memory import FrozenLinear, contiguous_head, dense_frozen_base, no_input_casts, release_memory, tune_allocator
from rltk.policy.sampler import DenseSampler, dense_policy
from rltk.policy.sources import (ALIASES, DEFAULT_MODEL, TINY_SPEC, EmbeddedModel, cache_dir, convert_gguf, is_cached,
                                 portable_name, resolve_source, spec_for_base)
from rltk.policy.tiny import tiny_policy, tiny_tokenizer

__all__ = [
    "ALIASES",
    "PROMPT_FILE",
    "read_prompt",
    "save_adapter",
    "DEFAULT_MODEL",
    "Decoded",
    "DenseSampler",
    "dense_policy",
    "EmbeddedModel",
    "FrozenLinear",
    "LoraSettings",
    "ModelConfig",
    "Picker",
    "Policy",
    "Quant",
    "TINY_SPEC",
    "adapter_base",
    "attach_lora",
    "autocast",
    "cache_dir",
    "cache_kwarg",
    "compute_dtype",
    "compute_dtype_choice",
    "contiguous_head",
    "convert_gguf",
    "decode",
    "default_device",
    "dense_frozen_base",
    "eos_token_ids",
    "footprint_bytes",
    "hf_model",
    "is_cached",
    "load_policy",
    "load_trainable_state",
    "no_input_casts",
    "policy_from_config",
    "portable_name",
    "prepare_tokenizer",
    "release_memory",
    "resolve_source",
    "spec_for_base",
    "tiny_policy",
    "tiny_tokenizer",
    "trainable_state",
    "tune_allocator",
]
