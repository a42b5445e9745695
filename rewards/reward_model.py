"""The ``reward_model`` built-in: one score per completion from a sequence-classification model (a trained
reward model), loaded once per process and run in-process, in batches (it is a model, not user code)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

from rewards.core import REWARDS, BuiltinReward, completion_text, is_conversational
from rltk.core.errors import UserError

_LOADED: dict[tuple[str, str, str], "Loaded"] = {}  # (model, device, dtype) -> the loaded model
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Loaded:
    model: Any  # a transformers AutoModelForSequenceClassification, in eval mode on ``device``
    tokenizer: Any
    device: str


@REWARDS.register("reward_model")
@dataclass(frozen=True)
class RewardModel(BuiltinReward):
    """The logit ``label`` (an index, or a name of the model's ``id2label``; default 0: the first logit,
    what a one-label reward model outputs) of ``model`` (a Hub id or a local folder; loaded with
    ``AutoModelForSequenceClassification`` and its tokenizer when the reward set is built), optionally
    squashed by ``normalize`` (``sigmoid``; ``softmax`` over the labels). The model reads the chat
    template of the prompt's messages plus the completion as the assistant turn when the tokenizer has
    one, else the prompt text (message contents joined by newlines, then a newline) followed by the
    completion; inputs longer than ``max_length`` tokens lose their start (the completion is kept).
    ``device``: default ``cuda`` when available, else ``cpu``; ``dtype`` ``auto``: bfloat16 on a GPU,
    float32 on the CPU."""

    model: str = ""
    batch_size: int = 8
    max_length: int = 2048
    device: str | None = None
    label: int | str = 0
    normalize: Literal["none", "sigmoid", "softmax"] = "none"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("reward_model needs params.model: a Hub model id or a local folder")
        if self.batch_size < 1 or self.max_length < 2:
            raise ValueError(f"reward_model needs batch_size >= 1 and max_length >= 2, got {self.batch_size}, {self.max_length}")
        label_index(self.loaded().model, self.label, self.model)  # a bad path or label fails now, not mid-run

    def loaded(self) -> Loaded:
        return load_reward_model(self.model, self.device, self.dtype)

    def __call__(self, completions: list, **columns: Any) -> list[float | None]:
        import torch

        m, n = self.loaded(), len(completions)
        prompts = columns.get("prompts")
        prompts = prompts if isinstance(prompts, (list, tuple)) and len(prompts) == n else [None] * n
        texts = [reward_input(m.tokenizer, p, completion_text(c)) for p, c in zip(prompts, completions)]
        templated = bool(getattr(m.tokenizer, "chat_template", None))
        index = label_index(m.model, self.label, self.model)
        out: list[float | None] = []
        for start in range(0, n, self.batch_size):
            batch = m.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True, max_length=self.max_length,
                                add_special_tokens=not templated, return_tensors="pt").to(m.device)
            with torch.inference_mode():
                logits = m.model(**batch).logits.float()  # [b, labels]
            if self.normalize == "softmax":
                logits = logits.softmax(-1)
            scores = logits[:, index]
            if self.normalize == "sigmoid":
                scores = scores.sigmoid()
            out += [float(v) for v in scores.cpu()]
        return out


def reward_input(tokenizer: Any, prompt: Any, completion: str) -> str:
    """The text the reward model reads for one (prompt, completion) pair (see :class:`RewardModel`)."""
    if getattr(tokenizer, "chat_template", None):
        if is_conversational(prompt):
            turns = list(prompt)
        else:
            turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) and prompt else []
        return tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": completion}], tokenize=False)
    if is_conversational(prompt):
        return "\n".join(completion_text([m]) for m in prompt) + "\n" + completion
    return (prompt if isinstance(prompt, str) else "") + completion


def label_index(model: Any, label: int | str, name: str) -> int:
    """The logit column of ``label``; UserError when the model has no such label."""
    num = int(model.config.num_labels)
    if isinstance(label, str):
        by_name = dict(getattr(model.config, "label2id", None) or {})
        if label not in by_name:
            raise UserError(f"reward_model '{name}' has no label {label!r} (labels: {', '.join(map(str, by_name)) or 'none'})")
        return int(by_name[label])
    if not 0 <= label < num:
        raise UserError(f"reward_model '{name}': label {label} is out of range (the model has {num} logits)")
    return label


def load_reward_model(name: str, device: str | None = None, dtype: str = "auto") -> Loaded:
    """The model and tokenizer of ``name`` on ``device``, loaded once per process; UserError (one line,
    naming it) when it cannot be loaded or has no trained classification head."""
    import torch

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    key = (name, dev, dtype)
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _load(name, dev, dtype)
        return _LOADED[key]


def _load(name: str, device: str, dtype: str) -> Loaded:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(
        dtype, torch.bfloat16 if device.startswith("cuda") else torch.float32)
    try:
        tok = AutoTokenizer.from_pretrained(name)
        model, info = AutoModelForSequenceClassification.from_pretrained(name, dtype=torch_dtype, output_loading_info=True)
    except Exception as e:  # noqa: BLE001 - any loading failure is the config's path
        why = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"reward_model: cannot load '{name}' (a Hub id or a local folder with a sequence-classification "
                        f"model and its tokenizer): {type(e).__name__}: {why}") from e
    fresh = sorted(info.get("missing_keys") or [])
    if fresh:
        raise UserError(f"reward_model '{name}' has no trained classification head (newly initialized: "
                        f"{', '.join(fresh[:3])}): it is not a reward model")
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise UserError(f"reward_model '{name}': its tokenizer has neither a pad nor an eos token to pad batches with")
        tok.pad_token = tok.eos_token
    tok.padding_side, tok.truncation_side = "right", "left"
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    model.to(device).eval()
    return Loaded(model, tok, device)
