"""Batched generation for evals: left-padded batches sorted by prompt length, the KV cache,
finished rows dropped from the batch as they stop, greedy or sampled.

Why not ``model.generate``: a batch there keeps computing every row until the longest one
stops. Here a row that emits EOS leaves the batch (its cache rows are dropped), so a batch
costs what its rows need, not ``batch x longest``. Samples of the same prompt share one prefill.
The loop is rltk's one decode loop (:func:`rltk.policy.decode.decode`); this module picks the tokens.

Sampling is reproducible per row: sample ``j`` of prompt ``i`` draws from its own
``torch.Generator`` seeded from ``(seed, i, j)``, so the random stream of a row does not
depend on which other rows share its batch.

>>> from rltk.policy.tiny import tiny_policy
>>> pol = tiny_policy()
>>> out = generate(pol, ["<|im_start|>user\\nhi<|im_end|>\\n"], GenerationSettings(max_new_tokens=4))
>>> len(out), len(out[0]), out[0][0].tokens, out[0][0].truncated
(1, 1, 4, True)
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from rltk.core.errors import UserError
from rltk.core.seeds import row_generators, row_uniforms
from rltk.policy.decode import Decoded, Picker, decode, eos_token_ids, sample_tokens
from rltk.policy.devices import autocast
from rltk.policy.parallel import even_shares, run_threads, thread_count


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    n_samples: int = 1  # completions per prompt
    batch_size: int = 16  # sequences decoded together (prompts x samples), shared among the decode threads
    seed: int = 0
    threads: int = 0  # threads decoding together, each its share of a batch (0: auto, see rltk.policy.parallel)

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
        if self.threads < 0:
            raise UserError(f"decode threads must be >= 0 (0: auto), got {self.threads}")
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


def _sample(logits: torch.Tensor, settings: GenerationSettings, gens: list[torch.Generator], rows: list[int]) -> torch.Tensor:
    """Next token per row from the fp32 ``logits`` [b, V], each row drawing from its own generator."""
    scaled = logits if settings.temperature == 1.0 else logits / settings.temperature  # T = 1: no pass over [b, V]
    probs = torch.softmax(scaled, dim=-1)  # [b, V]
    if settings.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > settings.top_p  # keep the smallest prefix reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return sample_tokens(probs, row_uniforms(gens, rows))  # [b]: each row its own draw


def _picker(settings: GenerationSettings, items: list[int], device: torch.device) -> Picker:
    """Greedy: argmax. Sampled: sample ``j`` of prompt ``items[i]`` draws from a generator seeded from
    ``(seed, items[i], j)``. Records nothing."""
    if settings.greedy:
        return lambda logits, alive: (logits.float().argmax(dim=-1), None)  # [b]
    gens = row_generators(settings.seed, items, settings.n_samples, device)
    return lambda logits, alive: (_sample(logits.float(), settings, gens, alive.tolist()), None)


class _Tally:
    """What the decode threads report, under one lock: the generation stats and the progress callback."""

    def __init__(self, stats: GenerationStats, progress: Progress | None):
        self.stats, self.progress, self.prompts, self.lock = stats, progress, 0, threading.Lock()

    def tokens(self, k: int) -> None:
        with self.lock:
            self.stats.tokens += k
            self._show()

    def batch(self, prompts: int, prompt_tokens: int, sequences: int) -> None:
        with self.lock:
            self.prompts += prompts
            self.stats.prompt_tokens += prompt_tokens
            self.stats.sequences += sequences
            self._show()

    def _show(self) -> None:
        if self.progress is not None:
            self.progress(self.prompts, self.stats.tokens)


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

    Prompts are sorted by token length so each batch pads little. The decode threads
    (:func:`rltk.policy.parallel.run_threads`) decode at most ``batch_size // n_samples`` prompts together (at least
    one), each thread its share as a batch of its own, the shares as even as
    :func:`~rltk.policy.parallel.even_shares` cuts them; a thread takes the next share when done. What a row draws does
    not depend on that (its own generator), greedy rows agree up to the rounding of a batch's padding. Runs under
    the policy's autocast (bf16 on CPU) with the model in eval mode; the model's train/eval mode is restored after.
    """
    tok = policy.tokenizer
    encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    for i, ids in enumerate(encoded):
        if not ids:
            raise UserError(f"prompt {i} is empty after tokenization")
    eos = eos_token_ids(policy, "generation")
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), i))
    threads = thread_count(policy.device, settings.threads)
    most = -(-max(1, settings.batch_size // settings.n_samples) // threads)  # prompts a thread decodes at once
    decoded: list[list[Decoded] | None] = [None] * len(prompts)
    tally = _Tally(stats if stats is not None else GenerationStats(), progress)
    model = policy.model
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()

    def job(batch: list[int]) -> Callable[[], None]:
        def run() -> None:
            ids = [encoded[i] for i in batch]
            outs = decode(policy, ids, settings.n_samples, settings.max_new_tokens, eos,
                          _picker(settings, batch, policy.device), tally.tokens)
            for i, samples in zip(batch, outs):
                decoded[i] = samples
            tally.batch(len(batch), sum(len(x) for x in ids), len(batch) * settings.n_samples)
        return run

    try:
        with autocast(policy.device) if policy.device.type in ("cpu", "cuda") else contextlib.nullcontext():
            run_threads([job(order[r.start:r.stop]) for r in even_shares(len(order), most, threads)], threads)
    finally:
        if was_training:
            model.train()
        tally.stats.seconds += time.perf_counter() - t0
    return [[Completion(tok.decode(d.ids, skip_special_tokens=True), len(d.ids), d.truncated) for d in samples]
            for samples in decoded if samples is not None]
