"""The LoRA tensors of a policy: read them out (``trainable_state``), copy them in (``load_trainable_state``),
save them as a portable peft adapter with its tokenizer and the prompt they were trained with (``save_adapter``),
and the model's memory footprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rltk.policy.base import Policy
from rltk.policy.sources import portable_name

PROMPT_FILE = "rltk_prompt.json"  # beside a saved adapter: the system prompt and template it was trained with


def save_adapter(policy: Policy, folder: str | Path, prompt: dict[str, Any] | None = None) -> Path:
    """The policy's adapter as a portable peft folder: ``save_pretrained`` with ``base_model_name_or_path`` =
    :func:`~rltk.policy.sources.portable_name` of its base (a hub id, not this machine's cache path), its tokenizer
    beside it (``AutoPeftModelForCausalLM`` and ``AutoTokenizer`` read the folder alone), and with ``prompt``
    (``system_prompt``, ``prompt`` template, ``messages_column``) ``PROMPT_FILE``, so an eval asks the way
    training did."""
    path = Path(folder)
    configs = list(getattr(policy.model, "peft_config", {}).values())
    names = [cfg.base_model_name_or_path for cfg in configs]
    try:  # the portable name goes into the saved file only: the live model keeps the name it was loaded with
        for cfg in configs:
            cfg.base_model_name_or_path = portable_name(policy.spec)
        policy.model.save_pretrained(str(path), save_embedding_layers=False)  # see trainable_state
    finally:
        for cfg, name in zip(configs, names):
            cfg.base_model_name_or_path = name
    policy.tokenizer.save_pretrained(str(path))
    if prompt is not None:
        (path / PROMPT_FILE).write_text(json.dumps(prompt, indent=1) + "\n")
    return path


def read_prompt(folder: str | Path) -> dict[str, Any] | None:
    """The training prompt recorded beside an adapter (None when there is none: an adapter from elsewhere)."""
    path = Path(folder) / PROMPT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def adapter_base(folder: str | Path) -> str | None:
    """The base model a saved peft adapter names (its ``base_model_name_or_path``), None when it names none."""
    from peft import PeftConfig

    return PeftConfig.from_pretrained(str(folder)).base_model_name_or_path


def footprint_bytes(model: Any) -> int:
    """Bytes held by parameters and buffers (quantized weights counted at their packed size)."""
    total = 0
    seen: set[int] = set()
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The LoRA tensors only (what crosses to rollout workers and into checkpoints). rltk's LoRA never adapts the
    embeddings; saying so (``save_embedding_layers=False``) keeps peft from reading the base's config (from the hub,
    for an adapter naming a hub id) on every call to find out."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(model, save_embedding_layers=False)
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def load_trainable_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    """Copy LoRA tensors (keys as :func:`trainable_state` or a saved peft adapter give them) into the adapter's
    parameters in place.

    peft's ``set_peft_model_state_dict`` first builds the whole model's ``state_dict`` to remap names; on a 4-bit
    base on CPU that unpacks every quantized weight (measured 1-2 s per sync on SmolLM2-135M after the first
    generation, against ~10 ms here). This touches the adapter tensors only and refuses a partial or foreign state.
    """
    adapter = getattr(model, "active_adapter", "default")
    adapter = adapter[0] if isinstance(adapter, (list, tuple)) else adapter
    params = {name.replace(f".{adapter}.", "."): p for name, p in model.named_parameters() if "lora_" in name}
    missing, unexpected = params.keys() - state.keys(), state.keys() - params.keys()
    if missing or unexpected:
        raise ValueError(f"adapter state does not match the model's LoRA parameters: {len(missing)} missing "
                         f"(e.g. {sorted(missing)[:2]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:2]})")
    with torch.no_grad():
        for key, p in params.items():
            if p.shape != state[key].shape:
                raise ValueError(f"adapter tensor {key} has shape {tuple(state[key].shape)}, "
                                 f"the model's {tuple(p.shape)}")
            p.copy_(state[key])


__all__ = ["PROMPT_FILE", "adapter_base", "footprint_bytes", "load_trainable_state", "read_prompt", "save_adapter",
           "trainable_state"]
