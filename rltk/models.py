"""``rltk.models``: the names of :mod:`rltk.policy` under their historical home (``from rltk.models import
load_policy, LoraSettings`` keeps working). New code imports from ``rltk.policy``."""

from rltk.policy.adapters import footprint_bytes, load_trainable_state, trainable_state
from rltk.policy.base import LoraSettings, ModelConfig, Policy, Quant, attach_lora, prepare_tokenizer
from rltk.policy.devices import autocast, compute_dtype, default_device
from rltk.policy.loading import load_policy, policy_from_config
from rltk.policy.sampler import DenseSampler
from rltk.policy.sources import ALIASES, DEFAULT_MODEL, TINY_SPEC, EmbeddedModel, cache_dir, convert_gguf, is_cached, resolve_source
from rltk.policy.tiny import tiny_policy, tiny_tokenizer

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "DenseSampler",
    "EmbeddedModel",
    "LoraSettings",
    "ModelConfig",
    "Policy",
    "Quant",
    "TINY_SPEC",
    "attach_lora",
    "autocast",
    "cache_dir",
    "compute_dtype",
    "convert_gguf",
    "default_device",
    "footprint_bytes",
    "is_cached",
    "load_policy",
    "load_trainable_state",
    "policy_from_config",
    "prepare_tokenizer",
    "resolve_source",
    "tiny_policy",
    "tiny_tokenizer",
    "trainable_state",
]
