"""Batched generation for evals: left-padded batches sorted by prompt length, the KV cache,
finished rows dropped from the batch as they stop, greedy or sampled.

Why not ``model.generate``: a batch there keeps computing every row until the longest one
stops. Here a row that emits EOS leaves the batch (its cache rows are dropped), so a batch
costs what its rows need, not ``batch x longest``. Samples of the same prompt share one prefill.

Sampling is reproducible per row: sample ``j`` of prompt ``i`` draws from its own
``torch.Generator`` seeded from ``(seed, i, j)``, so the random stream of a row does not
depend on which other rows share its batch.

>>> from rltk.models import tiny_policy
>>> pol = tiny_policy()
>>> out = generate(pol, ["<|im_start|>user\\nhi<|im_end|>\\n"], GenerationSettings(max_new_tokens=4))
>>> len(out), len(out[0]), out[0][0].tokens, out[0][0].truncated
(1, 1, 4, True)
"""

from __future__ import annotations

import contextlib
import inspect
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from rltk.core.errors import UserError
from rltk.core.seeds import row_seed
from rltk.models import autocast


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    n_samples: int = 1  # completions per prompt
    batch_size: int = 16  # sequences decoded together (prompts x samples)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UserError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise UserError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n_samples < 1:
            raise UserError(f"samples must be >= 1, got {self.n_samples}")
        if self.batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {self.batch_size}")
        if self.n_samples > 1 and self.temperature == 0:
            raise UserError(f"{self.n_samples} samples with greedy decoding (temperature 0) would all be identical; set a temperature > 0")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Completion:
    text: str  # decoded, special tokens skipped
    tokens: int  # generated tokens, EOS included when generated
    truncated: bool  # stopped by max_new_tokens without EOS


@dataclass
class GenerationStats:
    seconds: float = 0.0
    tokens: int = 0  # generated tokens
    prompt_tokens: int = 0
    sequences: int = 0


# A progress callback receives (prompts finished so far, generated tokens so far).
Progress = Callable[[int, int], None]


def _hf_model(model: Any) -> Any:
    """The transformers model under a peft wrapper (LoRA layers are injected in place, so calling it
    still applies the adapters)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _cache_kwarg(hf_model: Any) -> str:
    params = inspect.signature(hf_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _eos_ids(policy: Any) -> list[int]:
    tok, model = policy.tokenizer, _hf_model(policy.model)
    ids: set[int] = set()
    for src in (getattr(model.generation_config, "eos_token_id", None), tok.eos_token_id):
        if src is None:
            continue
        ids.update([src] if isinstance(src, int) else list(src))
    if not ids:
        raise UserError(f"model {policy.spec!r} has no EOS token; generation would never stop")
    return sorted(ids)


def _pick(logits: torch.Tensor, settings: GenerationSettings, gens: list[torch.Generator]) -> torch.Tensor:
    """Next token per row from ``logits`` [b, V] (fp32)."""
    if settings.greedy:
        return logits.argmax(dim=-1)  # [b]
    probs = torch.softmax(logits / settings.temperature, dim=-1)  # [b, V]
    if settings.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > settings.top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return torch.cat([torch.multinomial(probs[r], 1, generator=gens[r]) for r in range(probs.shape[0])])  # [b]


@torch.inference_mode()
def _decode(
    policy: Any,
    prompt_ids: list[list[int]],
    items: list[int],
    settings: GenerationSettings,
    eos: torch.Tensor,
    on_token: Callable[[int], None],
) -> list[list[tuple[list[int], bool]]]:
    """Decode ``n_samples`` continuations of each prompt in one batch; returns, per prompt, per
    sample, (generated ids, truncated)."""
    from transformers import DynamicCache

    model = _hf_model(policy.model)
    tok = policy.tokenizer
    dev = policy.device
    n = settings.n_samples
    width = max(len(p) for p in prompt_ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else int(eos[0])
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompt_ids], device=dev)  # [P, L]
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompt_ids], device=dev)  # [P, L]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # [P, L] left padding: real tokens count from 0
    cache = DynamicCache(config=model.config)
    ck = _cache_kwarg(model)
    params = inspect.signature(model.forward).parameters
    last_only = {"logits_to_keep": 1} if "logits_to_keep" in params else {}  # no full-vocab logits for every prompt token
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=True, **last_only, **{ck: cache})
    logits = out.logits[:, -1, :].float()  # [P, V]
    if n > 1:  # samples of one prompt share its prefill
        cache.batch_repeat_interleave(n)
        logits = logits.repeat_interleave(n, dim=0)  # [P*n, V]
        mask = mask.repeat_interleave(n, dim=0)
        positions = positions.repeat_interleave(n, dim=0)
    rows = len(prompt_ids) * n
    gens = []
    if not settings.greedy:
        for i in items:
            for j in range(n):
                g = torch.Generator(device=dev)
                g.manual_seed(row_seed(settings.seed, i, j))
                gens.append(g)
    alive = torch.arange(rows, device=dev)  # [b] original row of each live row
    generated: list[list[int]] = [[] for _ in range(rows)]
    finished = [False] * rows
    next_pos = positions[:, -1] + 1  # [b]
    for step in range(settings.max_new_tokens):
        nxt = _pick(logits, settings, [gens[r] for r in alive.tolist()] if gens else [])  # [b]
        nxt_list = nxt.tolist()
        stop = torch.isin(nxt, eos)  # [b]
        for r, t in zip(alive.tolist(), nxt_list):
            generated[r].append(t)
        on_token(len(nxt_list))
        stop_list = stop.tolist()
        for r, s in zip(alive.tolist(), stop_list):
            finished[r] = finished[r] or s
        if step == settings.max_new_tokens - 1:
            break
        keep = ~stop  # [b]
        if not bool(keep.any()):
            break
        if not bool(keep.all()):  # drop finished rows from the batch and the cache
            idx = keep.nonzero().squeeze(-1)
            cache.batch_select_indices(idx)
            alive, nxt, mask, next_pos = alive[idx], nxt[idx], mask[idx], next_pos[idx]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)  # [b, L+t+1]
        out = model(
            input_ids=nxt[:, None], attention_mask=mask, position_ids=next_pos[:, None], use_cache=True, **{ck: cache}
        )
        logits = out.logits[:, -1, :].float()  # [b, V]
        next_pos = next_pos + 1
    result: list[list[tuple[list[int], bool]]] = []
    for p in range(len(prompt_ids)):
        result.append([(generated[p * n + j], not finished[p * n + j]) for j in range(n)])
    return result


def render_prompts(policy: Any, messages: Sequence[list[dict[str, str]]]) -> list[str]:
    """Chat messages → prompt strings with the model's chat template (generation prompt added)."""
    tok = policy.tokenizer
    if not getattr(tok, "chat_template", None):
        raise UserError(f"model {policy.spec!r} has no chat template; eval prompts are chat messages")
    return [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in messages]


def generate(
    policy: Any,
    prompts: Sequence[str],
    settings: GenerationSettings,
    progress: Progress | None = None,
    stats: GenerationStats | None = None,
) -> list[list[Completion]]:
    """``settings.n_samples`` completions for each prompt string, in prompt order.

    Prompts are sorted by token length so each batch pads little; each batch holds
    ``batch_size // n_samples`` prompts (at least one). Runs under the policy's autocast
    (bf16 on CPU) with the model in eval mode; the model's train/eval mode is restored after.
    """
    tok = policy.tokenizer
    encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    for i, ids in enumerate(encoded):
        if not ids:
            raise UserError(f"prompt {i} is empty after tokenization")
    eos = torch.tensor(_eos_ids(policy), device=policy.device)
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
    per_batch = max(1, settings.batch_size // settings.n_samples)
    results: list[list[Completion] | None] = [None] * len(prompts)
    stats = stats if stats is not None else GenerationStats()
    done_prompts = 0
    model = policy.model
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()

    def on_token(k: int) -> None:
        stats.tokens += k
        if progress is not None:
            progress(done_prompts, stats.tokens)

    try:
        with autocast(policy.device) if policy.device.type in ("cpu", "cuda") else contextlib.nullcontext():
            for start in range(0, len(order), per_batch):
                batch = order[start : start + per_batch]
                ids = [encoded[i] for i in batch]
                stats.prompt_tokens += sum(len(x) for x in ids)
                outs = _decode(policy, ids, batch, settings, eos, on_token)
                for i, samples in zip(batch, outs):
                    comps = []
                    for gen_ids, truncated in samples:
                        comps.append(Completion(tok.decode(gen_ids, skip_special_tokens=True), len(gen_ids), truncated))
                    results[i] = comps
                    stats.sequences += len(comps)
                done_prompts += len(batch)
                if progress is not None:
                    progress(done_prompts, stats.tokens)
    finally:
        if was_training:
            model.train()
        stats.seconds += time.perf_counter() - t0
    return [r for r in results if r is not None]
