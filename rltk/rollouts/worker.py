"""Rollouts: ``G`` sampled completions per prompt, with the sampling policy's per-token log-probs.

The sampler never computes a loss; it only turns :class:`PromptRequest` s into
:class:`RolloutGroup` s (the one typed object that crosses a process boundary, see
``rltk.rollouts.ray_rollouts``).

How one batch is sampled (:func:`sample_completions`, through the one decode loop :func:`rltk.policy.decode.decode`):

* the ``B`` prompts are encoded once (one prefill of ``[B, P]``) and the KV cache is repeated
  ``G`` times, so a group's shared prompt is never encoded ``G`` times;
* each decoding step runs the model on the live rows only: a row that emits EOS leaves the
  batch and its cache rows are dropped, so a batch costs what its rows need;
* on a CPU the batch's prompts are decoded as two shares, one per thread of this process
  (:mod:`rltk.policy.parallel`, ``sampling.threads``), on the one copy of the weights; every completion draws from
  its own generator (:func:`rltk.core.seeds.row_generators`), so the split changes no completion;
* logits are processed exactly as they are sampled: ``/ temperature``, top-k, top-p, then
  ``softmax``; the stored log-prob of a token is the log of its probability under *that* distribution
  (the distribution actually sampled, not the raw logits);
* which weights it samples with (``SamplingConfig.sampler``): ``shared`` runs the learner's own
  model (eval mode, ``rltk.policy.autocast``; LoRA folded into an unquantized base for the
  duration); ``dense`` runs a dense copy (at the compute dtype) of *base + merged LoRA*
  (:class:`rltk.policy.sampler.DenseSampler`), rebuilt exactly from the LoRA tensors after every update.
  On CPU the dense copy is an order of magnitude faster: bitsandbytes' 4-bit matmul is very slow
  for decode-sized inputs there, and autocast re-casts every fp32 weight at every step (measured,
  SmolLM2-135M, 32 x 48 tokens: NF4 122-255 s, dense fp32 + autocast 39-62 s, dense bf16 3.5 s).
  ``auto`` = dense on CPU, shared on CUDA.

>>> from rltk.policy.tiny import tiny_policy
>>> worker = RolloutWorker(None, SamplingConfig(group_size=2, max_new_tokens=5), policy=tiny_policy(lora={"r": 4}))
>>> [g] = worker.generate([PromptRequest(0, {"q": "x"}, [{"role": "user", "content": "hi"}])], seed=0)
>>> len(g.completion_ids), all(len(c) == len(l) for c, l in zip(g.completion_ids, g.logprobs))
(2, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Literal, Sequence

import torch

from rltk.core.errors import UserError
from rltk.core.seeds import row_generators, row_uniforms
from rltk.policy.adapters import load_trainable_state
from rltk.policy.base import ModelConfig, Policy
from rltk.policy.decode import decode, eos_token_ids, sample_tokens
from rltk.policy.devices import autocast, compute_dtype
from rltk.policy.loading import policy_from_config
from rltk.policy.memory import release_memory
from rltk.policy.parallel import even_shares, run_threads, thread_count
from rltk.policy.sampler import DenseSampler


@dataclass(frozen=True)
class SamplingConfig:
    """The ``sampling:`` section: how completions are drawn."""

    group_size: int = 8  # G completions per prompt
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    batch_sequences: int = 256  # at most this many sequences (prompts x G) decoded together, shared among the threads
    threads: int = 0  # threads decoding together, each its share of a batch (0: auto, see rltk.policy.parallel)
    sampler: Literal["auto", "dense", "shared"] = "auto"  # see the module docstring

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.batch_sequences < 1:
            raise ValueError(f"batch_sequences must be >= 1, got {self.batch_sequences}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: auto), got {self.threads}")


@dataclass
class PromptRequest:
    """Driver → worker: one prompt to sample a group for."""

    index: int  # position of the prompt in the run's data stream; unique within a run
    row: dict[str, Any]  # the dataset row (columns the rewards need)
    messages: list[dict[str, str]]  # chat prompt (rendered with the tokenizer's chat template by the worker)


@dataclass
class RolloutGroup:
    """Worker → driver: the ``G`` completions of one prompt."""

    index: int  # == PromptRequest.index
    row: dict[str, Any]
    prompt_ids: list[int]
    completion_ids: list[list[int]]  # G lists, unpadded, EOS included when generated
    logprobs: list[list[float]]  # sampling policy's log-prob of each completion token (same lengths)
    texts: list[str]  # decoded completions, special tokens skipped
    truncated: list[bool]  # stopped by max_new_tokens, no EOS
    policy_version: int  # adapter version that sampled this group
    worker_id: str = ""

    @property
    def num_tokens(self) -> int:
        return sum(len(c) for c in self.completion_ids)


# ----------------------------------------------------------------------------- pure helpers


def filtered_logits(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """fp32 logits ``[b, V]`` of the distribution actually sampled: logits / T (no pass at T = 1), then top-k, then
    top-p (the smallest set of most likely tokens whose probability reaches ``top_p``); filtered tokens get -inf."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature  # [b, V]
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # [b, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)  # [b, V]
        sorted_p = sorted_logits.softmax(dim=-1)
        drop_sorted = sorted_p.cumsum(dim=-1) - sorted_p >= top_p  # mass before this token already reaches top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)  # [b, V]
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def process_logits(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Log-probs ``[b, V]`` of the distribution actually sampled (:func:`filtered_logits`).

    >>> lp = process_logits(torch.log(torch.tensor([[0.5, 0.3, 0.2]])), 1.0, top_p=0.7)
    >>> [round(x, 3) for x in lp.exp()[0].tolist()]
    [0.625, 0.375, 0.0]
    """
    return torch.log_softmax(filtered_logits(logits, temperature, top_k, top_p), dim=-1)  # [b, V]


def pick_tokens(logits: torch.Tensor, uniforms: torch.Tensor, sampling: SamplingConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step's tokens ``[b]`` drawn from ``logits`` ``[b, V]`` as ``sampling`` filters them (one uniform
    per row), and each token's log-prob under that distribution ``[b]``: one softmax pass over the vocabulary (not
    log-softmax + exp), the log of the one probability each row records."""
    probs = torch.softmax(filtered_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p), dim=-1)
    nxt = sample_tokens(probs, uniforms)  # [b]
    return nxt, probs.gather(-1, nxt[:, None]).squeeze(-1).log()


def encode_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Chat messages → token ids with the tokenizer's chat template and the generation prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("the tokenizer has no chat template; prompts are chat messages")
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class Sampled:
    ids: list[int]
    logprobs: list[float]
    truncated: bool


def sample_completions(
    policy: Policy,
    prompt_ids: Sequence[list[int]],
    sampling: SamplingConfig,
    generators: Sequence[torch.Generator],
    eos_ids: Sequence[int],
) -> list[list[Sampled]]:
    """``G = sampling.group_size`` completions per prompt, in one batch; per prompt, per sample. Sample ``j`` of
    prompt ``i`` draws from ``generators[i * G + j]``, so what a row draws does not depend on its batch."""

    def pick(logits: torch.Tensor, alive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pick_tokens(logits, row_uniforms(generators, alive.tolist()), sampling)

    decoded = decode(policy, prompt_ids, sampling.group_size, sampling.max_new_tokens, eos_ids, pick)
    return [[Sampled(d.ids, d.values, d.truncated) for d in samples] for samples in decoded]


# ----------------------------------------------------------------------------- sampling mode


def _lora_layers(model: Any) -> list[Any]:
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def can_merge_lora(policy: Policy) -> bool:
    """Merging is exact enough (fp32 add, then subtract) only on an unquantized base; a 4-bit base
    would be re-quantized, which loses the adapter's small updates."""
    return policy.quant == "none" and bool(_lora_layers(policy.model))


@contextlib.contextmanager
def sampling_mode(policy: Policy, merge_lora: bool = True) -> Iterator[None]:
    """Eval mode + autocast; with ``merge_lora`` (unquantized base) LoRA is folded into the base weights
    for the duration and unfolded after, which saves the adapters' extra matmuls at every decoding step.

    Unmerging subtracts what merging added, so the base weights come back to within fp32 rounding
    (~1e-7 relative), and the adapter tensors themselves are never touched.
    """
    model = policy.model
    was_training = model.training
    model.eval()
    merged = merge_lora and can_merge_lora(policy)
    saved: dict[int, torch.Tensor] = {}
    try:
        if merged:  # keep an exact copy of each base weight so unmerging restores it bit for bit
            for layer in _lora_layers(model):
                w = layer.get_base_layer().weight
                saved[id(layer)] = w.data.clone()
                layer.merge()
        with autocast(policy.device):
            yield
    finally:
        if merged:
            for layer in _lora_layers(model):
                if id(layer) in saved:
                    layer.merged_adapters.clear()
                    layer.get_base_layer().weight.data.copy_(saved[id(layer)])
        if was_training:
            model.train()


# ----------------------------------------------------------------------------- worker


class RolloutWorker:
    """Samples groups for prompt requests. A plain class: ``rltk.rollouts.ray_worker`` wraps it with ``ray.remote``.

    In-process (``policy`` given) it shares the learner's model: no copy of the policy, and with the
    ``dense`` sampler one dense copy refreshed from the shared LoRA tensors at each new version.
    Otherwise it builds its own policy from ``model`` (4-bit base + LoRA, starting from
    ``init_adapter``) and receives LoRA tensors through :meth:`load_adapter_state`.
    """

    def __init__(self, model: ModelConfig | None, sampling: SamplingConfig, seed: int = 0,
                 init_adapter: str | None = None, policy: Policy | None = None, worker_id: str = "local"):
        if policy is None:
            if model is None:
                raise ValueError("RolloutWorker needs a model config or a policy")
            torch.manual_seed(seed)
            policy = policy_from_config(model, adapter=init_adapter, trainable=False)
        self.policy = policy
        self.sampling = sampling
        self.worker_id = worker_id
        self._version = 0
        self._eos = eos_token_ids(policy)
        mode = sampling.sampler
        if mode == "auto":
            mode = "dense" if policy.device.type == "cpu" else "shared"
        self.dense = DenseSampler(policy.model, dtype=compute_dtype(policy.device)) if mode == "dense" else None

    def refresh(self) -> None:
        """Rebuild the dense sampling copy from the policy's current LoRA tensors (no-op when sharing)."""
        if self.dense is not None:
            self.dense.refresh()

    def load_adapter_state(self, state: dict[str, torch.Tensor], version: int) -> None:
        """Load LoRA tensors (never the base) sent by the learner; they become adapter ``version``."""
        load_trainable_state(self.policy.model, state)
        self.refresh()
        self._version = int(version)

    def set_version(self, version: int) -> None:
        """In-process: the shared model already holds adapter ``version``; refresh the dense copy from it."""
        if int(version) != self._version:
            self.refresh()
        self._version = int(version)

    def policy_version(self) -> int:
        return self._version

    def pid(self) -> int:
        return os.getpid()

    def generate(self, requests: list[PromptRequest], seed: int) -> list[RolloutGroup]:
        """One group per request, in request order; reproducible for the same (requests, seed, adapter)."""
        if not requests:
            return []
        tok = self.policy.tokenizer
        prompts = [encode_prompt(tok, r.messages) for r in requests]
        for r, p in zip(requests, prompts):
            if not p:
                raise UserError(f"prompt {r.index} is empty after tokenization")
        g = self.sampling.group_size
        threads = thread_count(self.policy.device, self.sampling.threads)
        most = -(-max(1, self.sampling.batch_sequences // g) // threads)  # prompts a thread decodes at once
        if self.dense is not None:  # compute-dtype weights already: no autocast, nothing to merge
            target, ctx = dataclasses.replace(self.policy, model=self.dense.model), contextlib.nullcontext()
        else:
            target, ctx = self.policy, sampling_mode(self.policy)

        def job(share: range) -> Callable[[], list[list[Sampled]]]:
            gens = row_generators(seed, [requests[i].index for i in share], g, self.policy.device)
            return lambda: sample_completions(target, prompts[share.start:share.stop], self.sampling, gens, self._eos)

        with ctx:
            parts = run_threads([job(r) for r in even_shares(len(prompts), most, threads)], threads)
        sampled = [group for part in parts for group in part]
        if self.policy.device.type == "cpu":  # the KV caches go back to the OS before the learner runs
            release_memory(collect=False)
        groups = []
        for req, ids, samples in zip(requests, prompts, sampled):
            groups.append(RolloutGroup(
                index=req.index,
                row=req.row,
                prompt_ids=ids,
                completion_ids=[s.ids for s in samples],
                logprobs=[s.logprobs for s in samples],
                texts=[tok.decode(s.ids, skip_special_tokens=True) for s in samples],
                truncated=[s.truncated for s in samples],
                policy_version=self._version,
                worker_id=self.worker_id,
            ))
        return groups


__all__ = [
    "PromptRequest",
    "RolloutGroup",
    "RolloutWorker",
    "SamplingConfig",
    "Sampled",
    "can_merge_lora",
    "encode_prompt",
    "eos_token_ids",
    "filtered_logits",
    "pick_tokens",
    "process_logits",
    "sample_completions",
    "sampling_mode",
]
