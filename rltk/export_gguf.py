"""A merged Llama-architecture model (SmolLM2, Llama) as one GGUF file for llama.cpp and Ollama, written with the
``gguf`` package the way llama.cpp's ``convert_hf_to_gguf.py`` writes llama models:

* metadata: ``llama.*`` hyper-parameters (context, embedding and feed-forward lengths, block and head counts, rope
  theta and dimension, RMS epsilon, vocabulary size) and the tokenizer (``gpt2`` byte-level BPE: tokens, token types,
  merges, special token ids, add-BOS flag and chat template read by ``gguf.SpecialVocab`` from the saved tokenizer);
* tensor names from gguf's own map (``gguf.get_tensor_name_map``, the ``TensorNameMap`` transformers' GGUF loader
  reverses); the q and k projections permuted as llama.cpp's converter does (its rope pairs dimensions the other way);
* 1-D tensors (norms) in F32, matrices in F16 or Q8_0 (``gguf.quants``); a matrix whose rows do not split into
  Q8_0 blocks stays F16, as llama.cpp's converter does.

``transformers`` reads the file back (``from_pretrained(folder, gguf_file=...)``) and undoes the permutation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from rltk.core.errors import UserError

GGUF_TYPES = {  # --gguf-type: (tensor type of the matrices, the file type llama.cpp records)
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}


def permute_for_llama_cpp(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` of a q or k projection (``n_head`` = heads of that projection): HF's
    rotary embedding rotates the two halves of each head, llama.cpp's rotates neighbouring pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rope_theta(cfg: Any) -> float:
    """Rope theta from ``rope_parameters`` (transformers 5) or the older fields; UserError for scaled rope."""
    params = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        raise UserError(f"GGUF export: rope scaling {kind!r} is not supported (plain rope only)")
    theta = params.get("rope_theta", getattr(cfg, "rope_theta", None))
    if theta is None:
        raise UserError("GGUF export: the model config has no rope theta")
    return float(theta)


def _add_hparams(w: gguf.GGUFWriter, cfg: Any, name: str, file_type: int) -> None:
    if cfg.model_type != "llama" or getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        raise UserError(f"GGUF export supports Llama-architecture models without biases (SmolLM2, Llama); "
                        f"this one is {cfg.model_type!r}")
    heads = cfg.num_attention_heads
    w.add_name(name)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(cfg.num_key_value_heads or heads)
    w.add_rope_freq_base(_rope_theta(cfg))
    w.add_rope_dimension_count(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(cfg.vocab_size)
    w.add_file_type(file_type)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)


def pre_tokenizer_name(tokenizer: Any) -> str:
    """llama.cpp's name for how the tokenizer splits text before BPE: ``gpt2`` (GPT-2's regex), ``smollm`` (each
    digit alone, then GPT-2's regex). UserError for another split: llama.cpp would tokenize differently."""
    pre = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [(s.get("type"), s.get("individual_digits", s.get("use_regex"))) for s in steps]
    if kinds == [("ByteLevel", True)]:
        return "gpt2"
    if kinds == [("Digits", True), ("ByteLevel", True)]:
        return "smollm"
    raise UserError(f"GGUF export: the tokenizer's pre-tokenizer {[k for k, _ in kinds]} is not one llama.cpp is "
                    "known to reproduce (ByteLevel, or Digits + ByteLevel)")


def _add_tokenizer(w: gguf.GGUFWriter, tokenizer: Any, tokenizer_dir: Path, n_vocab: int) -> None:
    """Tokens and their types from the HF tokenizer (as llama.cpp's ``get_vocab_base``); merges, special ids, add-BOS
    and the chat template through ``gguf.SpecialVocab`` from the saved tokenizer files."""
    try:
        gguf.vocab.BpeVocab(tokenizer_dir)  # gguf's own test for a GPT-2 style byte-level BPE tokenizer
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"GGUF export needs a byte-level BPE tokenizer (GPT-2 style, as SmolLM2's): {e}") from e
    added = tokenizer.added_tokens_decoder  # {id: AddedToken}
    if len(tokenizer) > n_vocab:
        raise UserError(f"GGUF export: the tokenizer has {len(tokenizer)} tokens, the model {n_vocab}")
    tokens, types = [], []
    for i, tok in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
        kind = gguf.TokenType.NORMAL
        if i in added:
            kind = gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED
        tokens.append(tok)
        types.append(kind)
    for i in range(len(tokenizer), n_vocab):  # rows of the embedding no token uses (as llama.cpp pads them)
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = gguf.SpecialVocab(tokenizer_dir, load_merges=True, n_vocab=n_vocab)
    probe = tokenizer("a")["input_ids"]  # whether encoding adds BOS / EOS, said outright rather than left to defaults
    special.add_special_token.setdefault("bos", bool(probe) and probe[0] == tokenizer.bos_token_id)
    special.add_special_token.setdefault("eos", bool(probe) and probe[-1] == tokenizer.eos_token_id)
    special.add_to_gguf(w, quiet=True)


def _tensors(model: Any, qtype: gguf.GGMLQuantizationType) -> list[tuple[str, np.ndarray, gguf.GGMLQuantizationType]]:
    """``(gguf name, data, tensor type)`` for every weight of the model, named by gguf's map."""
    cfg = model.config
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    heads = {gguf.MODEL_TENSOR.ATTN_Q: cfg.num_attention_heads,
             gguf.MODEL_TENSOR.ATTN_K: cfg.num_key_value_heads or cfg.num_attention_heads}
    out = []
    for hf_name, t in model.state_dict().items():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # tied: llama.cpp reads the output projection from token_embd
        found = names.get_type_and_name(hf_name, try_suffixes=(".weight", ".bias"))
        if found is None:
            raise UserError(f"GGUF export: no GGUF name for the tensor {hf_name}")
        kind, name = found
        data = t.detach().to(torch.float32).cpu().numpy()
        if kind in heads:
            data = permute_for_llama_cpp(data, heads[kind])
        if data.ndim <= 1:
            out.append((name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.F32), gguf.GGMLQuantizationType.F32))
            continue
        try:
            out.append((name, gguf.quants.quantize(data, qtype), qtype))
        except gguf.quants.QuantError:  # rows that do not split into blocks: F16, as llama.cpp's converter falls back
            out.append((name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.F16), gguf.GGMLQuantizationType.F16))
    return out


def write_gguf(model: Any, tokenizer: Any, tokenizer_dir: Path, path: Path, gguf_type: str, name: str) -> Path:
    """Write ``model`` (a merged transformers Llama) and its tokenizer (saved in ``tokenizer_dir``) to ``path``."""
    if gguf_type not in GGUF_TYPES:
        raise UserError(f"unknown --gguf-type {gguf_type!r} (choose from {', '.join(GGUF_TYPES)})")
    qtype, file_type = GGUF_TYPES[gguf_type]
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _add_hparams(writer, model.config, name, file_type)
    _add_tokenizer(writer, tokenizer, tokenizer_dir, model.config.vocab_size)
    for tensor_name, data, dtype in _tensors(model, qtype):
        writer.add_tensor(tensor_name, data, raw_dtype=dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


__all__ = ["GGUF_TYPES", "permute_for_llama_cpp", "pre_tokenizer_name", "write_gguf"]
