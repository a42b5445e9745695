"""Test models for the deploy tests: a tiny Llama with a byte-level BPE tokenizer (the kind GGUF and llama.cpp
read, like SmolLM2's) saved as a local HF folder, and a trained-looking adapter on it."""

from __future__ import annotations

from pathlib import Path

import torch
from plain_generate import PROMPTS, greedy_tokens  # noqa: F401  (re-exported for the tests)

from adapter_helpers import random_lora_b  # tests/rltk
from rltk.policy import LoraSettings, load_policy, save_adapter

# SmolLM2's chat template (ChatML, with a default system prompt when the messages bring none)
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = ["What is 12 + 7? The answer is 19.", "Compute 3 * 4 = 12, then add 5: 17.", "hello world, the model says hi",
          "Question: 45 - 9 = ? Answer: 36", "A quick brown fox jumps over the lazy dog 0123456789"] * 4


def bpe_tokenizer():
    """A byte-level BPE fast tokenizer (~300 tokens) trained in-process, specials first as in SmolLM2."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(CORPUS, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    return tok


def bpe_llama(folder: Path, seed: int = 0) -> Path:
    """A random tiny Llama (4 query heads, 2 KV heads: the q/k permutation is exercised) + the BPE tokenizer, saved."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = bpe_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for p in model.parameters():  # larger than the default init: logits far apart, so argmax is stable
            if p.dim() == 2:
                p.normal_(0, 0.3)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def perturbed_adapter(spec: str, folder: Path, scale: float = 0.2, seed: int = 1, prompt: dict | None = None) -> Path:
    """A LoRA adapter on ``spec`` whose B matrices are random (a fresh adapter is the identity), saved by rltk."""
    pol = load_policy(spec, quant="none", lora=LoraSettings(r=4, alpha=8))
    random_lora_b(pol.model, scale, seed)
    return save_adapter(pol, folder, prompt)


def top1_agreement(model, reference, tok, prompts: list[str] = PROMPTS, max_new_tokens: int = 12,
                   reference_tokens: list[list[int]] | None = None) -> float:
    """Share of positions where ``model``'s next-token argmax is ``reference``'s, along ``reference``'s own greedy
    continuations (teacher forced: one early difference does not count again at every later token);
    ``reference_tokens``: those continuations when the caller has them already."""
    same = total = 0
    conts = reference_tokens if reference_tokens is not None else greedy_tokens(reference, tok, prompts, max_new_tokens)
    for p, cont in zip(prompts, conts):
        ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]
        seq = torch.cat([ids, torch.tensor([cont])], dim=1)
        with torch.no_grad():
            a = model(seq).logits[0, ids.shape[1] - 1:-1].argmax(-1)
            b = reference(seq).logits[0, ids.shape[1] - 1:-1].argmax(-1)
        same += int((a == b).sum())
        total += len(cont)
    return same / total
