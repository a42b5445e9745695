"""The pieces a policy is made of: its settings (:class:`LoraSettings`, :class:`ModelConfig`), the loaded
:class:`Policy`, and the steps that build one (quantization config, base model, tokenizer, LoRA)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import torch

from rltk.core.errors import UserError
from rltk.policy.devices import autocast, compute_dtype
from rltk.policy.sources import DEFAULT_MODEL

Quant = Literal["none", "nf4", "int8"]

@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter shape. ``target_modules='all-linear'`` adapts every linear layer but the head."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"

    def __post_init__(self) -> None:
        if self.r <= 0:
            raise ValueError(f"lora rank must be positive, got {self.r}")

    def to_peft(self) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            task_type="CAUSAL_LM",
        )


@dataclass(frozen=True)
class ModelConfig:
    """The ``model:`` section of every config file."""

    spec: str = DEFAULT_MODEL
    quant: Quant = "nf4"
    lora: LoraSettings = field(default_factory=LoraSettings)
    adapter: str | None = None
    device: str | None = None  # None: CUDA when present, else CPU
    gradient_checkpointing: bool = False


@dataclass
class Policy:
    """A loaded policy. Unpacks as ``model, tokenizer = load_policy(...)``."""

    model: Any
    tokenizer: Any
    device: torch.device
    spec: str
    quant: str
    source: str  # the folder, file or hub id the weights came from

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.tokenizer))

    @property
    def compute_dtype(self) -> torch.dtype:
        return compute_dtype(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device)


def _quantization_config(quant: str, device: torch.device) -> Any:
    from transformers import BitsAndBytesConfig

    if quant == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype(device),
        )
    if quant == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise UserError(f"unknown quant {quant!r} (none, nf4, int8)")


def load_base(source: str, spec: str, quant: str, device: torch.device) -> Any:
    """The base model from ``source`` (HF folder or hub id), quantized as ``quant``, on ``device``."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if quant != "none":
        kwargs["quantization_config"] = _quantization_config(quant, device)
        kwargs["device_map"] = {"": device.index if device.type == "cuda" and device.index is not None else device.type}
        if device.type == "cuda":
            kwargs["device_map"] = {"": torch.cuda.current_device() if device.index is None else device.index}
    else:
        kwargs["dtype"] = torch.float32 if device.type == "cpu" else compute_dtype(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise UserError(
            f"cannot load model {spec!r} from {source!r}: {str(e).splitlines()[0]} "
            "(a hub id needs network access or a copy in the HF cache)"
        ) from e
    if quant == "none":
        model.to(device)
    return model


def load_tokenizer(source: str, spec: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise UserError(f"cannot load tokenizer for {spec!r} from {source!r}: {str(e).splitlines()[0]}") from e
    return prepare_tokenizer(tok)


def prepare_tokenizer(tok: Any) -> Any:
    """Left padding (batched generation) and a pad token."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def attach_lora(model: Any, lora: LoraSettings | dict | None, adapter: str | None, trainable: bool,
                quantized: bool, gradient_checkpointing: bool = False) -> Any:
    from peft import PeftModel, get_peft_model

    if isinstance(lora, dict):
        lora = LoraSettings(**lora)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if adapter is not None:
        if not (Path(adapter) / "adapter_config.json").is_file():
            raise UserError(f"adapter folder {adapter} has no adapter_config.json")
        return PeftModel.from_pretrained(model, adapter, is_trainable=trainable)
    if lora is not None:
        return get_peft_model(model, lora.to_peft())
    return model


__all__ = ["LoraSettings", "ModelConfig", "Policy", "Quant", "attach_lora", "load_base", "load_tokenizer",
           "prepare_tokenizer"]
