"""The learner: owns the optimizer, turns a :class:`TrainBatch` into adapter updates; never samples.

* AdamW over the trainable (LoRA) parameters only; warm-up then a constant or cosine schedule
  (:func:`lr_at`, a pure function of the step, so the schedule's state is the step number);
  gradient clipping.
* Micro-batches with gradient accumulation: memory is bounded by ``micro_batch_size``
  sequences, whatever ``G`` or the number of prompts per step. Sequences are sorted by length
  before they are cut into micro-batches, so little compute is spent on padding.
* Log-probs are computed only on completion positions and one row at a time in fp32
  (:func:`rltk.logprobs.selective_log_probs`), never a full-vocabulary fp32 log-softmax over the whole batch.
* The ``G`` completions of a prompt share its forward pass (:func:`rltk.logprobs.shared_prompt_log_probs`): the
  prompt runs once into a KV cache (with gradient) and the completions run on top of it packed into one row
  (a 4D mask keeps them apart; no padding to the longest), exactly as if each sequence ran alone. Arithmetic
  prompts are ~2/3 of a sequence, so this cuts the learner's tokens by ~2.5x for G = 8.
* On CPU the frozen base weights are held dense at the compute dtype (bf16 or fp32, measured per CPU:
  :func:`rltk.policy.devices.compute_dtype`; :func:`rltk.policy.memory.dense_frozen_base`): a 4-bit base
  is dequantized once (bitsandbytes' CPU 4-bit matmul is 10-50x slower), and an fp32 base is
  stored at the precision autocast computes with anyway, so it is not re-cast at every forward.
* On a dense base each LoRA layer's update is added to the base output inside one in-place GEMM
  (:func:`rltk.policy.fused.fuse_lora_forward`), not by peft's scale-copy-add passes over the output.
* ``mu`` inner iterations reuse the same rollouts. On-policy rollouts need no extra forward for
  the old log-probs: in the first iteration the parameters are still those that sampled, so the
  old log-probs are the current ones detached (ratio 1, with gradient); they are kept for the
  later iterations. Stale rollouts (sampled by an older adapter: one-step-off-policy pipelines)
  use the sampler's stored log-probs instead.
* The per-token objective is ``cfg.policy_loss`` (:mod:`rltk.policy_losses`: ``ppo_clip``, ``gspo``, ``cispo``,
  ``module:fn``). Every completion carries the sampler's log-probs: on the on-policy rows of the first iteration
  the learner compares them with its own (``UpdateStats.mismatch``: the mean and max of π_learner / π_sampler)
  and, with ``cfg.is_correction`` (``tis``, ``mis``), weights each token's policy loss to correct for the gap.
* With ``beta == 0`` sequences whose advantage is 0 are not run at all: their loss and gradient
  are exactly zero, and the batch normalisers (:class:`rltk.loss.BatchTotals`) still count them.
* The reference policy for the KL term is the same model, never a second copy: ``base`` = the
  adapters disabled (``model.disable_adapter()``); ``init`` = the adapter the run started from
  (e.g. the SFT warm start), swapped in for the reference forward from a snapshot of the LoRA
  tensors (a few MB). No reference forward at all when ``beta == 0``.
* A non-finite loss or gradient skips the optimizer step (gradients dropped, adapter untouched)
  and says so in the returned stats.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import torch

from rltk.logprobs import MicroBatch, collate, completion_log_probs, is_checkpointing
from rltk.loss import AGGREGATIONS, BatchTotals, LossFields, LossParts, grpo_loss
from rltk.policy_losses import MismatchStats, bind_policy_loss, sampler_correction
from rltk.optim import OptimFields
from rltk.policy.base import Policy
from rltk.policy.devices import compute_dtype
from rltk.policy.fused import fuse_lora_forward
from rltk.policy.memory import dense_frozen_base, no_input_casts, release_memory, tune_allocator
from rltk.policy.parallel import run_threads, thread_count


def lr_at(step: int, total_steps: int, cfg: OptimFields) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up over ``warmup_steps``, then
    constant, or cosine from ``lr`` down to ``lr * min_lr_ratio`` at ``total_steps``.

    >>> cfg = OptimFields(lr=1.0, warmup_steps=2, schedule="cosine", min_lr_ratio=0.0)
    >>> [round(lr_at(s, 6, cfg), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class LossConfig(LossFields):
    """The objective's knobs (:class:`rltk.loss.LossFields`, as the ``grpo:`` section gives them) and the
    sampling temperature: log-probs are of logits / T."""

    temperature: float = 1.0

    @classmethod
    def of(cls, fields: LossFields, temperature: float) -> "LossConfig":
        """The loss settings of a ``grpo:`` section (any :class:`LossFields`) at this temperature."""
        return cls(**{f.name: getattr(fields, f.name) for f in dataclasses.fields(LossFields)}, temperature=temperature)


@dataclass
class TrainBatch:
    """Learner input: ``N`` sequences (prompt + sampled completion), one advantage each."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    advantages: list[float]  # [N]
    behaviour_logprobs: list[list[float] | None]  # the sampler's log-probs for stale rollouts, None when on-policy
    totals: BatchTotals  # normalisers of the whole batch (skipped sequences included)
    # the sampler's log-probs of every completion (None: not known), for the mismatch metrics and correction
    sampler_logprobs: list[list[float] | None] | None = None

    def __len__(self) -> int:
        return len(self.prompt_ids)

    @property
    def num_tokens(self) -> int:
        return sum(len(p) + len(c) for p, c in zip(self.prompt_ids, self.completion_ids))


@dataclass
class UpdateStats:
    applied: int = 0  # optimizer steps applied (of mu)
    skipped: str | None = None  # why an optimizer step was skipped
    loss: float = 0.0
    policy_loss: float = 0.0
    kl: float = 0.0  # mean k3 KL per token (0 when beta is 0)
    clip_fraction: float = 0.0
    grad_norm: float = 0.0
    lr: float = 0.0
    sequences: int = 0  # sequences run through the model (zero-advantage ones skipped when beta is 0)
    tokens: int = 0  # tokens run forward and backward (a shared prompt once), summed over mu
    mismatch: MismatchStats = field(default_factory=MismatchStats)  # sampler vs learner log-probs, first iteration
    extra: dict[str, float] = field(default_factory=dict)


class Learner:
    """AdamW over the policy's trainable parameters; see the module docstring."""

    def __init__(self, policy: Policy, optim: OptimFields, total_steps: int, reference: Literal["base", "init"] = "base",
                 dense_base: bool | None = None):
        if reference not in ("base", "init"):
            raise ValueError(f"reference must be 'base' or 'init', got {reference!r}")
        if policy.device.type == "cpu":
            tune_allocator()
        if dense_base if dense_base is not None else policy.device.type == "cpu":  # see dense_frozen_base
            dense_frozen_base(policy.model, compute_dtype(policy.device))
        fuse_lora_forward(policy.model)  # on a dense base: the LoRA update added inside one GEMM (rltk.policy.fused)
        self.policy = policy
        self.model = policy.model
        self.optim = optim
        self.total_steps = total_steps
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the policy has no trainable parameters (load it with LoRA and trainable=True)")
        self.optimizer = torch.optim.AdamW(self.params, lr=optim.lr, betas=optim.adam_betas,
                                           weight_decay=optim.weight_decay)
        self.version = 0  # optimizer steps applied so far = adapter version
        self.reference = reference
        # "init": the LoRA tensors as they are now (the run's starting adapter), for the reference forward
        self._init_params = [p.detach().clone() for p in self.params] if reference == "init" else None

    # ------------------------------------------------------------------ generic step

    def apply(self, micro_batches: Sequence[Any], loss_of: Callable[[Any], LossParts | torch.Tensor], step: int) -> UpdateStats:
        """One optimizer step: accumulate ``loss_of(mb).backward()`` over the micro-batches, clip, step.
        Each ``loss_of`` must already be that micro-batch's share of the batch loss (the sum is the loss)."""
        stats = UpdateStats(lr=lr_at(step, self.total_steps, self.optim))
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        items, threads = list(micro_batches), thread_count(self.policy.device, self.optim.threads)
        with no_input_casts(self.model):
            for start in range(0, len(items), threads):  # a wave: one micro-batch per thread
                wave = run_threads([self._gradients(mb, loss_of) for mb in items[start:start + threads]], threads)
                for parts, loss, grads in wave:  # summed in micro-batch order, as one thread would
                    if grads is None:
                        self.optimizer.zero_grad(set_to_none=True)
                        stats.skipped = "non-finite loss"
                        return stats
                    for p, g in zip(self.params, grads):
                        if g is not None:
                            p.grad = g.contiguous() if p.grad is None else p.grad.add_(g)  # (a broadcast one: a copy)
                    stats.loss += loss
                    if isinstance(parts, LossParts):
                        stats.policy_loss += parts.policy_loss
                        stats.kl += parts.kl_sum
                        stats.clip_fraction += parts.clipped_tokens
                        stats.extra["loss_tokens"] = stats.extra.get("loss_tokens", 0.0) + parts.tokens
        clip = self.optim.max_grad_norm if self.optim.max_grad_norm > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        stats.grad_norm = float(norm)
        if not math.isfinite(stats.grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            stats.skipped = "non-finite gradient"
            return stats
        for group in self.optimizer.param_groups:
            group["lr"] = stats.lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.version += 1
        stats.applied = 1
        return stats

    def _gradients(self, mb: Any, loss_of: Callable[[Any], LossParts | torch.Tensor]) -> Callable[[], tuple]:
        """A job: ``(parts, loss, gradients of the trainable parameters)`` of one micro-batch, ``None`` gradients
        when its loss is not finite. Run on a thread of its own, the micro-batch's activations are its own."""
        def run() -> tuple:
            with self.policy.autocast():
                parts = loss_of(mb)
            loss = parts.loss if isinstance(parts, LossParts) else parts
            if not bool(torch.isfinite(loss.detach())):
                return parts, float("nan"), None
            return parts, float(loss.detach()), torch.autograd.grad(loss, self.params, allow_unused=True)
        return run

    # ------------------------------------------------------------------ GRPO

    def grpo_update(self, batch: TrainBatch, cfg: LossConfig, step: int) -> UpdateStats:
        """``cfg.mu`` optimizer steps on one batch of rollouts (see the module docstring)."""
        keep = [i for i in range(len(batch)) if cfg.beta > 0 or batch.advantages[i] != 0.0]
        total = UpdateStats(lr=lr_at(step, self.total_steps, self.optim))
        if not keep:
            total.skipped = "no learning signal (every advantage is 0)"
            return total
        pad = self.policy.tokenizer.pad_token_id
        sampler = batch.sampler_logprobs or [None] * len(batch)
        micro = [collate([batch.prompt_ids[i] for i in c], [batch.completion_ids[i] for i in c], pad, self.policy.device,
                         [batch.advantages[i] for i in c], [batch.behaviour_logprobs[i] for i in c], rows=c, share_prompt=shared,
                         sampler=[sampler[i] for i in c])
                 for c, shared in self.plan_micro_batches(batch, keep)]
        aggregate, objective = AGGREGATIONS.get(cfg.loss_agg), bind_policy_loss(cfg)
        old: dict[int, torch.Tensor] = {}  # micro-batch -> old log-probs [n, T]
        weights: dict[int, torch.Tensor | None] = {}  # micro-batch -> mismatch correction [n, T] (None: none)
        ref: dict[int, torch.Tensor] = {}  # micro-batch -> reference log-probs [n, T]
        if cfg.beta > 0:
            ref = {k: self.reference_log_probs(mb, cfg.temperature) for k, mb in enumerate(micro)}
        tokens, clip_sum, counting = 0, 0.0, threading.Lock()
        for it in range(cfg.mu):
            def loss_of(k: int) -> LossParts:
                mb = micro[k]
                logp = completion_log_probs(self.model, mb, cfg.temperature)  # [n, T]
                if k not in old:  # first iteration: the parameters are still the sampler's
                    old[k] = torch.where(mb.stale[:, None], mb.behaviour, logp.detach())  # [n, T]
                    with counting:  # micro-batches may run on threads of their own (apply)
                        weights[k] = self._mismatch(mb, old[k], cfg, total.mismatch)
                return grpo_loss(logp, old[k], mb.advantages, mb.mask, batch.totals, cfg.epsilon_low, cfg.epsilon_high,
                                 cfg.beta, ref.get(k), aggregate, objective, weights[k])

            stats = self.apply(range(len(micro)), loss_of, step)
            tokens += sum(mb.n_run for mb in micro)  # a group's shared prompt once: the work done
            if stats.skipped:
                total.skipped = stats.skipped
                break
            total.applied += 1
            loss_tokens = max(stats.extra.get("loss_tokens", 0.0), 1.0)
            clip_sum += stats.clip_fraction / loss_tokens  # ppo_clip on-policy: iteration 0 has ratio 1, nothing clipped
            if it == 0:  # loss and KL as seen from the policy that sampled
                total.loss, total.policy_loss, total.grad_norm = stats.loss, stats.policy_loss, stats.grad_norm
                total.kl = stats.kl / loss_tokens
        total.clip_fraction = clip_sum / max(total.applied, 1)
        total.sequences = len(keep)
        total.tokens = tokens
        del micro, old, ref, weights
        if self.policy.device.type == "cpu":
            release_memory(collect=False)  # the step's activations go back to the OS before sampling
        return total

    @staticmethod
    def _mismatch(mb: MicroBatch, old: torch.Tensor, cfg: LossConfig, stats: MismatchStats) -> torch.Tensor | None:
        """The sampler–learner mismatch of a micro-batch's on-policy rows (counted in ``stats``) and the weights of
        ``cfg.is_correction`` (None for ``none``). Stale rows' old log-probs *are* the sampler's: nothing to correct."""
        if mb.sampler is None or mb.has_sampler is None:
            return None
        use = mb.mask.bool() & (mb.has_sampler & ~mb.stale)[:, None]  # [n, T]
        w, ratio, corrected = sampler_correction(old, mb.sampler, use, cfg.is_correction, cfg.is_cap)  # [n, T] each
        stats.add(ratio, use, corrected)
        return w

    def plan_micro_batches(self, batch: TrainBatch, rows: list[int]) -> list[tuple[list[int], bool]]:
        """Cut ``rows`` into micro-batches of at most ``micro_batch_size`` sequences: the completions of one
        prompt together (its prompt then runs once), else sorted by length (little padding).
        Gradient checkpointing disables the KV cache in training, so it takes the padded path."""
        size = self.optim.micro_batch_size
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in rows:
            groups.setdefault(tuple(batch.prompt_ids[i]), []).append(i)
        if not is_checkpointing(self.model) and any(len(g) > 1 for g in groups.values()):
            chunks = [g[k:k + size] for g in groups.values() for k in range(0, len(g), size)]
            return [(c, len(c) > 1) for c in chunks]
        ordered = sorted(rows, key=lambda i: len(batch.prompt_ids[i]) + len(batch.completion_ids[i]))  # length bucketing
        return [(ordered[k:k + size], False) for k in range(0, len(ordered), size)]

    @torch.no_grad()
    def reference_log_probs(self, mb: MicroBatch, temperature: float) -> torch.Tensor:
        """Log-probs [n, T] under the reference policy (see the module docstring)."""
        with self._reference_weights(), self.policy.autocast(), no_input_casts(self.model):
            return completion_log_probs(self.model, mb, temperature)

    @contextlib.contextmanager
    def _reference_weights(self) -> Any:
        if self._init_params is None:  # "base": the same base with the adapters switched off
            with self.model.disable_adapter():
                yield
            return
        current = [p.data for p in self.params]  # "init": point the LoRA parameters at the snapshot
        try:
            for p, ref in zip(self.params, self._init_params):
                p.data = ref
            yield
        finally:
            for p, cur in zip(self.params, current):
                p.data = cur

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.version = int(state["version"])


__all__ = [
    "Learner",
    "LossConfig",
    "MicroBatch",  # re-exported from rltk.logprobs
    "TrainBatch",
    "UpdateStats",
    "collate",  # re-exported from rltk.logprobs
    "completion_log_probs",  # re-exported from rltk.logprobs
    "lr_at",
]
