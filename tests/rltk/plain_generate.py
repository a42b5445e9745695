"""Greedy generation with plain transformers and torch only (no rltk): what a user of an exported model runs.
As a script, in a fresh process: ``python plain_generate.py FOLDER [GGUF_FILE]`` prints the greedy new tokens
of each prompt of ``PROMPTS`` (JSON on the last line) and whether rltk was imported."""

from __future__ import annotations

import json
import sys

import torch

PROMPTS = [f"What is {a} + {b}?" for a, b in zip(range(3, 23), range(40, 20, -1))]  # 20 prompts


def greedy_tokens(model, tok, prompts: list[str] = PROMPTS, max_new_tokens: int = 12) -> list[list[int]]:
    """Greedy new tokens per chat prompt, one prompt at a time (no padding), with plain ``generate``."""
    out = []
    for p in prompts:
        ids = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, return_tensors="pt",
                                      return_dict=True)["input_ids"]
        with torch.no_grad():
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out.append(gen[0, ids.shape[1]:].tolist())
    return out


if __name__ == "__main__":
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, extra = sys.argv[1], ({"gguf_file": sys.argv[2]} if len(sys.argv) > 2 else {})
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **extra).eval()
    tok = AutoTokenizer.from_pretrained(folder, **extra)
    tokens = greedy_tokens(model, tok, max_new_tokens=int(sys.argv[3]) if len(sys.argv) > 3 else 12)
    print(json.dumps({"tokens": tokens, "rltk_imported": any(m.split(".")[0] == "rltk" for m in sys.modules)}))
