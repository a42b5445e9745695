"""The tiny random model for tests and debugging: a character-level ChatML tokenizer and a Llama of a few
hundred thousand parameters, built in-process (identical weights in every process for a seed)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from rltk.policy.base import LoraSettings, Policy, Quant, attach_lora, load_base, prepare_tokenizer
from rltk.policy.sources import TINY_SPEC

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
    if quant != "none":  # quantized through a saved folder; a temporary one is removed once loaded
        with tempfile.TemporaryDirectory(prefix="rltk-tiny-") as tmp:
            where = Path(folder) if folder is not None else Path(tmp)
            model.save_pretrained(str(where))
            tok.save_pretrained(str(where))
            model = load_base(str(where), "tiny", quant, dev)
            source = str(where) if folder is not None else TINY_SPEC
    model = attach_lora(model, lora, None, True, quant != "none")
    return Policy(model=model, tokenizer=tok, device=dev, spec=TINY_SPEC, quant=quant, source=source)


__all__ = ["tiny_policy", "tiny_tokenizer"]
