"""Two facts about the transformers model under a policy: the model itself (under a peft wrapper)
and the name of its KV-cache argument."""

from __future__ import annotations

import inspect
from typing import Any


def hf_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (peft injects the LoRA layers in place, so calling
    the wrapped transformers model still applies the adapters)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def cache_kwarg(model: Any) -> str:
    """transformers >= 5.3x names the KV cache argument ``cache`` (``past_key_values`` is deprecated)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


__all__ = ["cache_kwarg", "hf_model"]
