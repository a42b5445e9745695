"""The learner: owns the optimizer, turns a :class:`TrainBatch` into adapter updates; never samples.

* AdamW over the trainable (LoRA) parameters only; warm-up then a constant or cosine schedule
  (:func:`lr_at`, a pure function of the step, so the schedule's state is the step number);
  gradient clipping.
* Micro-batches with gradient accumulation: memory is bounded by ``micro_batch_size``
  sequences, whatever ``G`` or the number of prompts per step. Sequences are sorted by length
  before they are cut into micro-batches, so little compute is spent on padding.
* Log-probs are computed only on completion positions and one row at a time in fp32
  (:func:`selective_log_probs`), never a full-vocabulary fp32 log-softmax over the whole batch.
* The ``G`` completions of a prompt share its forward pass (:func:`shared_prompt_log_probs`): the
  prompt runs once, its KV cache (with gradient) is repeated ``G`` times and the completions run
  on top, exactly as if each sequence ran alone. Arithmetic prompts are ~2/3 of a sequence, so
  this cuts the learner's tokens by ~2.5x for G = 8.
* On CPU the frozen base weights are held as dense bf16 (:func:`dense_frozen_base`): a 4-bit base
  is dequantized once (bitsandbytes' CPU 4-bit matmul is 10-50x slower), and an fp32 base is
  stored at the precision autocast computes with anyway, so it is not re-cast at every forward.
* ``mu`` inner iterations reuse the same rollouts. On-policy rollouts need no extra forward for
  the old log-probs: in the first iteration the parameters are still those that sampled, so the
  old log-probs are the current ones detached (ratio 1, with gradient); they are kept for the
  later iterations. Stale rollouts (sampled by an older adapter: one-step-off-policy pipelines)
  use the sampler's stored log-probs instead.
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
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import torch

from rltk.loss import AGGREGATIONS, BatchTotals, LossParts, grpo_loss
from rltk.models import Policy, compute_dtype


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-5
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    max_grad_norm: float = 1.0  # 0 = no clipping
    micro_batch_size: int = 8  # sequences per forward/backward

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.micro_batch_size < 1:
            raise ValueError(f"micro_batch_size must be >= 1, got {self.micro_batch_size}")
        if self.warmup_steps < 0 or self.max_grad_norm < 0:
            raise ValueError("warmup_steps and max_grad_norm must be >= 0")


def lr_at(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up over ``warmup_steps``, then
    constant, or cosine from ``lr`` down to ``lr * min_lr_ratio`` at ``total_steps``.

    >>> cfg = OptimConfig(lr=1.0, warmup_steps=2, schedule="cosine", min_lr_ratio=0.0)
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
class LossConfig:
    """The knobs of the GRPO objective (the ``grpo:`` section fills it)."""

    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    beta: float = 0.0  # KL weight; 0 = no reference forward at all
    loss_agg: Literal["sequence", "token", "constant"] = "sequence"
    mu: int = 1  # inner iterations over the same rollouts
    temperature: float = 1.0  # the sampling temperature: log-probs are of logits / T


@dataclass
class TrainBatch:
    """Learner input: ``N`` sequences (prompt + sampled completion), one advantage each."""

    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    advantages: list[float]  # [N]
    behaviour_logprobs: list[list[float] | None]  # the sampler's log-probs for stale rollouts, None when on-policy
    totals: BatchTotals  # normalisers of the whole batch (skipped sequences included)

    def __len__(self) -> int:
        return len(self.prompt_ids)

    @property
    def num_tokens(self) -> int:
        return sum(len(p) + len(c) for p, c in zip(self.prompt_ids, self.completion_ids))


@dataclass
class MicroBatch:
    input_ids: torch.Tensor  # [n, P+T] left-padded prompt | right-padded completion
    attention_mask: torch.Tensor  # [n, P+T]
    position_ids: torch.Tensor  # [n, P+T]
    targets: torch.Tensor  # [n, T] completion tokens
    mask: torch.Tensor  # [n, T] float, 1 on real completion tokens
    advantages: torch.Tensor  # [n]
    behaviour: torch.Tensor  # [n, T] stored sampler log-probs (0 where on-policy)
    stale: torch.Tensor  # [n] bool, True where the behaviour log-probs are the old ones
    rows: list[int]  # positions in the TrainBatch
    shared_prompt: list[int] | None = None  # set: every row has this prompt, run once (shared_prompt_log_probs)
    completions: list[list[int]] | None = None  # the rows' completions (the shared-prompt path needs them)
    pad_id: int = 0


def collate(prompts: Sequence[list[int]], completions: Sequence[list[int]], pad_id: int, device: torch.device,
            advantages: Sequence[float] | None = None, behaviour: Sequence[list[float] | None] | None = None,
            rows: list[int] | None = None, share_prompt: bool = False) -> MicroBatch:
    """``[pad… prompt | completion …pad]``: prompts left-padded, completions right-padded, so every
    completion starts at the same column and ``logits_to_keep`` can cut the logits to completion positions.
    ``share_prompt`` (all prompts equal): the forward runs the prompt once (:func:`shared_prompt_log_probs`)."""
    if share_prompt and any(p != prompts[0] for p in prompts):
        raise ValueError("share_prompt needs one prompt for every row")
    n = len(prompts)
    p_len = max(len(p) for p in prompts)
    t_len = max(max(len(c) for c in completions), 1)
    ids = torch.full((n, p_len + t_len), pad_id, dtype=torch.long)  # [n, P+T]
    attn = torch.zeros((n, p_len + t_len), dtype=torch.long)  # [n, P+T]
    mask = torch.zeros((n, t_len))  # [n, T]
    beh = torch.zeros((n, t_len))  # [n, T]
    stale = torch.zeros(n, dtype=torch.bool)  # [n]
    for i, (p, c) in enumerate(zip(prompts, completions)):
        ids[i, p_len - len(p):p_len] = torch.tensor(p)
        attn[i, p_len - len(p):p_len + len(c)] = 1
        if c:
            ids[i, p_len:p_len + len(c)] = torch.tensor(c)
            mask[i, :len(c)] = 1.0
        if behaviour is not None and behaviour[i] is not None:
            beh[i, :len(c)] = torch.tensor(behaviour[i])
            stale[i] = True
    pos = (attn.cumsum(-1) - 1).clamp(min=0)  # [n, P+T] left padding: real tokens count from 0
    adv = torch.tensor(list(advantages) if advantages is not None else [0.0] * n, dtype=torch.float32)  # [n]
    return MicroBatch(ids.to(device), attn.to(device), pos.to(device), ids[:, p_len:].to(device), mask.to(device),
                      adv.to(device), beh.to(device), stale.to(device), rows if rows is not None else list(range(n)),
                      list(prompts[0]) if share_prompt else None, [list(c) for c in completions], pad_id)


class _TokenLogProb(torch.autograd.Function):
    """``log softmax(logits / T)[target]`` with a hand-written backward that keeps only the logits
    (in their own dtype, bf16 under autocast) and the fp32 log-normaliser: autograd's own graph would
    keep an fp32 copy of every ``[T, V]`` row, ~4x the logits in memory."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
        lse = torch.empty(targets.shape, dtype=torch.float32, device=logits.device)  # [n, T]
        picked = torch.empty_like(lse)  # [n, T]
        for i in range(logits.shape[0]):  # one fp32 row [T, V] alive at a time
            x = logits[i].to(torch.float32, copy=True).div_(temperature)
            lse[i] = torch.logsumexp(x, dim=-1)
            picked[i] = x.gather(-1, targets[i][:, None]).squeeze(-1)
        ctx.save_for_backward(logits, targets, lse)
        ctx.temperature = temperature
        return picked - lse

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        logits, targets, lse = ctx.saved_tensors
        out = torch.empty_like(logits)  # [n, T, V]
        for i in range(logits.shape[0]):
            x = logits[i].to(torch.float32, copy=True).div_(ctx.temperature)  # [T, V]
            g = x.sub_(lse[i][:, None]).exp_().mul_(-grad[i][:, None])  # -softmax * grad
            g.scatter_add_(-1, targets[i][:, None], grad[i][:, None])  # + onehot * grad
            out[i] = g.div_(ctx.temperature)
        return out, None, None


def selective_log_probs(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``log softmax(logits / T)[target]`` [n, T] from logits [n, T, V], one row at a time in fp32,
    never a full-vocabulary fp32 log-softmax over the batch (see :class:`_TokenLogProb`)."""
    if logits.requires_grad:
        return _TokenLogProb.apply(logits, targets, temperature)
    out = []
    for row_logits, row_targets in zip(logits, targets):  # [T, V], [T]
        x = row_logits.float() / temperature  # [T, V]
        out.append(x.gather(-1, row_targets[:, None]).squeeze(-1) - torch.logsumexp(x, dim=-1))  # [T]
    return torch.stack(out)  # [n, T]


def completion_log_probs(model: Any, mb: MicroBatch, temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs [n, T] of the micro-batch's completion tokens under ``model``."""
    if mb.shared_prompt is not None:
        return shared_prompt_log_probs(model, mb.shared_prompt, mb.completions, mb.pad_id, temperature)[0]
    t_len = mb.targets.shape[1]
    out = model(input_ids=mb.input_ids, attention_mask=mb.attention_mask, position_ids=mb.position_ids,
                use_cache=False, logits_to_keep=t_len + 1)
    logits = out.logits[:, :-1, :]  # [n, T, V]: position j predicts completion token j
    return selective_log_probs(logits, mb.targets, temperature)


def _hf_model(model: Any) -> Any:
    # peft injects the LoRA layers in place: calling the wrapped transformers model applies them
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def is_checkpointing(model: Any) -> bool:
    hf = _hf_model(model)
    if hasattr(type(hf), "is_activation_checkpointing"):  # transformers >= 5 (the older name warns)
        return bool(hf.is_activation_checkpointing)
    return bool(getattr(hf, "is_gradient_checkpointing", False))


def _cache_kwarg(hf_model: Any) -> str:
    return "cache" if "cache" in inspect.signature(hf_model.forward).parameters else "past_key_values"


def shared_prompt_log_probs(model: Any, prompt_ids: list[int], completions: Sequence[list[int]], pad_id: int,
                            temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [n, T] (and mask [n, T]) of ``n`` completions of one prompt, the prompt run once.

    The prompt's KV cache keeps its gradient, so LoRA still learns through the prompt positions:
    the result (and its gradient) is that of ``n`` separate ``prompt + completion`` forwards.
    """
    from transformers import DynamicCache

    hf = _hf_model(model)
    dev = next(hf.parameters()).device
    n, p_len = len(completions), len(prompt_ids)
    t_len = max(max(len(c) for c in completions), 1)
    cache = DynamicCache(config=hf.config)
    ck = _cache_kwarg(hf)
    out = hf(input_ids=torch.tensor([prompt_ids], device=dev), use_cache=True, logits_to_keep=1, **{ck: cache})
    first = out.logits[:, -1:, :]  # [1, 1, V] predicts completion token 0
    if n > 1:
        cache.batch_repeat_interleave(n)
    ids = torch.full((n, t_len), pad_id, dtype=torch.long, device=dev)  # [n, T]
    mask = torch.zeros((n, t_len), device=dev)  # [n, T]
    for i, c in enumerate(completions):
        ids[i, :len(c)] = torch.tensor(c, device=dev)
        mask[i, :len(c)] = 1.0
    attn = torch.cat([torch.ones((n, p_len), dtype=torch.long, device=dev), mask.long()], dim=1)  # [n, P+T]
    pos = (p_len + torch.arange(t_len, device=dev)).expand(n, t_len)  # [n, T]
    first_lp = selective_log_probs(first.expand(n, 1, first.shape[-1]), ids[:, :1], temperature)  # [n, 1]
    if t_len == 1:
        return first_lp, mask
    out = hf(input_ids=ids[:, :-1], attention_mask=attn[:, :-1], position_ids=pos[:, :-1], use_cache=True, **{ck: cache})
    rest = selective_log_probs(out.logits, ids[:, 1:], temperature)  # [n, T-1]
    return torch.cat([first_lp, rest], dim=1), mask


class FrozenLinear(torch.nn.Linear):
    """A frozen linear layer stored at the compute precision (bf16). Under autocast it is a plain
    ``nn.Linear`` (the same numerics as autocast casting an fp32 weight); without autocast it casts
    its input to the weight's dtype and the output back, so the policy still runs outside autocast."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
        self.weight = torch.nn.Parameter(weight, requires_grad=False)
        if bias is not None:
            self.bias = torch.nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2 and not x.is_contiguous():
            # e.g. the head on hidden[:, -k:]: torch.matmul cannot fold a non-contiguous batch into one mm and,
            # for a weight without grad, expands the weight per batch row instead (measured: +3.5 GB and 3x
            # slower for a 64-prompt prefill through SmolLM2's 49k-token head)
            x = x.contiguous()
        if torch.is_autocast_enabled(x.device.type) or x.dtype == self.weight.dtype:
            return torch.nn.functional.linear(x, self.weight, self.bias)
        out = torch.nn.functional.linear(x.to(self.weight.dtype), self.weight, self.bias)
        return out.to(x.dtype)


def contiguous_head(model: Any) -> None:
    """Give a frozen output head :class:`FrozenLinear`'s contiguous-input path (same weight tensor, no copy)."""
    head = model.get_output_embeddings()
    if isinstance(head, torch.nn.Linear) and not isinstance(head, FrozenLinear) and not head.weight.requires_grad:
        model.set_output_embeddings(FrozenLinear(head.weight.data, None if head.bias is None else head.bias.data))


def dense_frozen_base(model: Any, dtype: torch.dtype = torch.bfloat16) -> int:
    """Hold every frozen linear weight of the base as a dense ``dtype`` tensor (CPU training).

    bitsandbytes 4-bit (NF4) layers are dequantized once, to exactly the weights QLoRA computes with;
    fp32 weights are stored at the precision autocast would cast them to at every forward. A tied
    output embedding gets its own bf16 copy (the input embedding stays as it is). The other frozen tensors
    (embeddings, norms) are copied out of the checkpoint's memory map, so the map is released: its
    pages otherwise stay resident (~0.5 GB of RSS for SmolLM2-135M). Returns layers converted.
    """
    from peft.tuners.lora import LoraLayer

    converted = 0
    hf = _hf_model(model)
    out_emb = hf.get_output_embeddings()
    if (isinstance(out_emb, torch.nn.Linear) and not isinstance(out_emb, FrozenLinear) and not out_emb.weight.requires_grad
            and out_emb.weight is hf.get_input_embeddings().weight):
        # tied input/output embeddings: the input side stays fp32 (the residual stream starts there); the head
        # gets its own bf16 copy, else autocast casts (and keeps for backward) the whole matrix at every forward
        hf.set_output_embeddings(FrozenLinear(out_emb.weight.data.to(dtype), None))
        converted += 1
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            w = getattr(child, "weight", None)
            if w is None or w.requires_grad or isinstance(child, (LoraLayer, FrozenLinear)):
                continue
            if w.__class__.__name__ == "Params4bit":
                import bitsandbytes.functional as bnbF

                data, state = w.data, w.quant_state
                if getattr(state, "packing_format_for_cpu", False):  # bnb repacked it for its CPU kernel
                    data, state = bnbF._convert_weight_packed_for_cpu_inverse(data, state)
                weight = bnbF.dequantize_4bit(data, state)
            elif isinstance(child, torch.nn.Linear) and w.dtype.is_floating_point:
                weight = w.data
            else:
                continue
            setattr(parent, name, FrozenLinear(weight.to(dtype), None if child.bias is None else child.bias.data.to(dtype)))
            converted += 1
    if converted:
        seen: set[int] = set()
        for t in list(model.parameters()) + list(model.buffers()):  # out of the memory-mapped checkpoint
            if not t.requires_grad and id(t) not in seen:
                seen.add(id(t))
                t.data = t.data.clone()
        release_memory()
    return converted


def _no_input_casts(model: Any) -> Any:
    """Under autocast peft's fp32 copy of every LoRA layer's input is pure cost (autocast casts it back to
    bf16 for the matmul; the copy is also kept for backward): skip it. Same numerics, less time and memory."""
    from peft.helpers import disable_input_dtype_casting

    return disable_input_dtype_casting(model)


def _glibc() -> Any:
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to tune
        return None


def release_memory(collect: bool = True) -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so RSS reflects what is in use."""
    import gc

    if collect:
        gc.collect()
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def tune_allocator() -> None:
    """glibc raises its mmap threshold after big blocks are freed, so later activation-sized tensors come
    from the heap and stay resident after the step; a fixed 1 MB threshold returns them to the OS on free
    (measured: ~0.3 GB less RSS between GRPO steps on SmolLM2-135M)."""
    libc = _glibc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD


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
    tokens: int = 0  # tokens (prompt + completion) run forward and backward, summed over mu
    extra: dict[str, float] = field(default_factory=dict)


class Learner:
    """AdamW over the policy's trainable parameters; see the module docstring."""

    def __init__(self, policy: Policy, optim: OptimConfig, total_steps: int, reference: Literal["base", "init"] = "base",
                 dense_base: bool | None = None):
        if reference not in ("base", "init"):
            raise ValueError(f"reference must be 'base' or 'init', got {reference!r}")
        if policy.device.type == "cpu":
            tune_allocator()
        if dense_base if dense_base is not None else policy.device.type == "cpu":  # see dense_frozen_base
            dense_frozen_base(policy.model, compute_dtype(policy.device))
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
        for mb in micro_batches:
            with self.policy.autocast(), _no_input_casts(self.model):
                parts = loss_of(mb)
            loss = parts.loss if isinstance(parts, LossParts) else parts
            if not bool(torch.isfinite(loss.detach())):
                self.optimizer.zero_grad(set_to_none=True)
                stats.skipped = "non-finite loss"
                return stats
            loss.backward()
            stats.loss += float(loss.detach())
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

    # ------------------------------------------------------------------ GRPO

    def grpo_update(self, batch: TrainBatch, cfg: LossConfig, step: int) -> UpdateStats:
        """``cfg.mu`` optimizer steps on one batch of rollouts (see the module docstring)."""
        keep = [i for i in range(len(batch)) if cfg.beta > 0 or batch.advantages[i] != 0.0]
        total = UpdateStats(lr=lr_at(step, self.total_steps, self.optim))
        if not keep:
            total.skipped = "no learning signal (every advantage is 0)"
            return total
        pad = self.policy.tokenizer.pad_token_id
        micro = [collate([batch.prompt_ids[i] for i in c], [batch.completion_ids[i] for i in c], pad, self.policy.device,
                         [batch.advantages[i] for i in c], [batch.behaviour_logprobs[i] for i in c], rows=c, share_prompt=shared)
                 for c, shared in self.plan_micro_batches(batch, keep)]
        aggregate = AGGREGATIONS.get(cfg.loss_agg)
        old: dict[int, torch.Tensor] = {}  # micro-batch -> old log-probs [n, T]
        ref: dict[int, torch.Tensor] = {}  # micro-batch -> reference log-probs [n, T]
        if cfg.beta > 0:
            ref = {k: self.reference_log_probs(mb, cfg.temperature) for k, mb in enumerate(micro)}
        tokens, clip_sum = 0, 0.0
        for it in range(cfg.mu):
            def loss_of(k: int) -> LossParts:
                mb = micro[k]
                logp = completion_log_probs(self.model, mb, cfg.temperature)  # [n, T]
                if k not in old:  # first iteration: the parameters are still the sampler's
                    old[k] = torch.where(mb.stale[:, None], mb.behaviour, logp.detach())  # [n, T]
                return grpo_loss(logp, old[k], mb.advantages, mb.mask, batch.totals, cfg.epsilon_low, cfg.epsilon_high,
                                 cfg.beta, ref.get(k), aggregate)

            stats = self.apply(range(len(micro)), loss_of, step)
            tokens += sum(int(mb.attention_mask.sum()) for mb in micro)
            if stats.skipped:
                total.skipped = stats.skipped
                break
            total.applied += 1
            loss_tokens = max(stats.extra.get("loss_tokens", 0.0), 1.0)
            clip_sum += stats.clip_fraction / loss_tokens  # on-policy, iteration 0 has ratio 1: nothing clipped
            if it == 0:  # loss and KL as seen from the policy that sampled
                total.loss, total.policy_loss, total.grad_norm = stats.loss, stats.policy_loss, stats.grad_norm
                total.kl = stats.kl / loss_tokens
        total.clip_fraction = clip_sum / max(total.applied, 1)
        total.sequences = len(keep)
        total.tokens = tokens
        del micro, old, ref
        if self.policy.device.type == "cpu":
            release_memory(collect=False)  # the step's activations go back to the OS before sampling
        return total

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
        with self._reference_weights(), self.policy.autocast(), _no_input_casts(self.model):
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
    "MicroBatch",
    "OptimConfig",
    "TrainBatch",
    "UpdateStats",
    "collate",
    "completion_log_probs",
    "FrozenLinear",
    "contiguous_head",
    "dense_frozen_base",
    "release_memory",
    "tune_allocator",
    "shared_prompt_log_probs",
    "lr_at",
    "selective_log_probs",
]
