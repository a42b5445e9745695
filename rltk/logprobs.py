"""Per-token log-probs of completions under a policy, for the learner: :func:`collate` (prompt | completion
micro-batches), :func:`selective_log_probs` (fp32, one row at a time) and the shared-prompt forward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from transformers import DynamicCache

from rltk.policy.decode import shared_prefix
from rltk.policy.hf import cache_kwarg, hf_model


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
    sampler: torch.Tensor | None = None  # [n, T] the sampler's log-probs of the tokens (0 where a row has none)
    has_sampler: torch.Tensor | None = None  # [n] bool, True where the row carries the sampler's log-probs

    @property
    def n_run(self) -> int:
        """Tokens the forward runs: a shared prompt once, then each row's completion; else every real token.

        >>> collate([[1, 2, 3]] * 2, [[4], [5, 6]], 0, torch.device("cpu"), share_prompt=True).n_run
        6
        >>> collate([[1, 2, 3], [1, 2]], [[4], [5, 6]], 0, torch.device("cpu")).n_run
        8
        """
        if self.shared_prompt is not None and self.completions is not None:
            return len(self.shared_prompt) + sum(len(c) for c in self.completions)
        return int(self.attention_mask.sum())


def collate(prompts: Sequence[list[int]], completions: Sequence[list[int]], pad_id: int, device: torch.device,
            advantages: Sequence[float] | None = None, behaviour: Sequence[list[float] | None] | None = None,
            rows: list[int] | None = None, share_prompt: bool = False,
            sampler: Sequence[list[float] | None] | None = None) -> MicroBatch:
    """``[pad… prompt | completion …pad]``: prompts left-padded, completions right-padded, so every
    completion starts at the same column and ``logits_to_keep`` can cut the logits to completion positions.
    ``share_prompt`` (all prompts equal): the forward runs the prompt once (:func:`shared_prompt_log_probs`).
    ``behaviour``: the old log-probs of stale rows; ``sampler``: the sampler's log-probs of every row that has them."""
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
    samp, has = _padded_rows(sampler, completions, t_len)  # [n, T], [n]
    return MicroBatch(ids.to(device), attn.to(device), pos.to(device), ids[:, p_len:].to(device), mask.to(device),
                      adv.to(device), beh.to(device), stale.to(device), rows if rows is not None else list(range(n)),
                      list(prompts[0]) if share_prompt else None, [list(c) for c in completions], pad_id,
                      samp.to(device), has.to(device))


def _padded_rows(values: Sequence[list[float] | None] | None, completions: Sequence[list[int]],
                 t_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token values of the rows that have them, right-padded with 0 [n, T], and which rows have them [n]."""
    out = torch.zeros((len(completions), t_len))  # [n, T]
    has = torch.zeros(len(completions), dtype=torch.bool)  # [n]
    for i, c in enumerate(completions):
        if values is not None and values[i] is not None:
            if len(values[i]) != len(c):
                raise ValueError(f"row {i}: {len(values[i])} sampler log-probs for {len(c)} completion tokens")
            out[i, :len(c)] = torch.tensor(values[i], dtype=torch.float32)
            has[i] = True
    return out, has


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


def is_checkpointing(model: Any) -> bool:
    hf = hf_model(model)
    if hasattr(type(hf), "is_activation_checkpointing"):  # transformers >= 5 (the older name warns)
        return bool(hf.is_activation_checkpointing)
    return bool(getattr(hf, "is_gradient_checkpointing", False))


def shared_prompt_log_probs(model: Any, prompt_ids: list[int], completions: Sequence[list[int]], pad_id: int,
                            temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs [n, T] (and mask [n, T]) of ``n`` completions of one prompt: the prompt run once, the completions
    packed into one row on top of it, no padding.

    1. The prompt runs once (batch 1) into a KV cache that keeps its gradient, so LoRA still learns through the
       prompt positions; its last logits give every completion's first token.
    2. The completions' tokens (each but its last) run as one packed row of ``S = sum(len - 1)`` tokens, positions
       ``P, P+1, …`` per completion, under a 4D mask [1, 1, S, P+S] (:func:`packed_causal_mask`): every token sees
       the whole prompt and the tokens before it in its own completion, nothing of the others.

    The result (and its gradient) is that of ``n`` separate ``prompt + completion`` forwards; no compute is spent on
    padding to the longest completion (a group's lengths often differ by 2x).
    """
    hf = hf_model(model)
    dev = next(hf.parameters()).device
    n, p_len = len(completions), len(prompt_ids)
    lens = [len(c) for c in completions]
    t_len = max(max(lens), 1)
    mask = torch.zeros((n, t_len), device=dev)  # [n, T]
    for i, k in enumerate(lens):
        mask[i, :k] = 1.0
    cache = DynamicCache(config=hf.config)
    ck = cache_kwarg(hf)
    out = hf(input_ids=torch.tensor([prompt_ids], device=dev), use_cache=True, logits_to_keep=1, **{ck: cache})
    first = out.logits[:, -1:, :]  # [1, 1, V] predicts completion token 0
    heads = torch.tensor([[c[0] if c else pad_id] for c in completions], device=dev)  # [n, 1]
    first_lp = selective_log_probs(first.expand(n, 1, first.shape[-1]), heads, temperature) * mask[:, :1]  # [n, 1]
    packed = [t for c in completions for t in c[:-1]]
    if not packed:
        return torch.cat([first_lp, first_lp.new_zeros((n, t_len - 1))], dim=1), mask
    pos = torch.tensor([p_len + j for k in lens for j in range(max(k - 1, 0))], device=dev)  # [S]
    targets = torch.tensor([t for c in completions for t in c[1:]], device=dev)  # [S]
    attn = packed_causal_mask(p_len, [max(k - 1, 0) for k in lens], dev)  # [1, 1, S, P+S]
    out = hf(input_ids=torch.tensor([packed], device=dev), attention_mask=attn, position_ids=pos[None], use_cache=True,
             **{ck: cache})
    rest = selective_log_probs(out.logits, targets[None], temperature)[0]  # [S]
    rows, at = [], 0
    for i, k in enumerate(lens):  # unpack: [first token | the rest | zeros to T]
        body = rest[at:at + max(k - 1, 0)]
        at += max(k - 1, 0)
        rows.append(torch.cat([first_lp[i], body, rest.new_zeros(t_len - 1 - body.shape[0])]))
    return torch.stack(rows), mask  # [n, T]


@dataclass
class PrefixRows:
    """Prompt + completion rows for a forward that runs their common ``prefix`` once (:func:`prefix_log_probs`):
    each row is ``prefix + contexts[i] + completions[i]``, and only the completion tokens are scored (SFT)."""

    prefix: list[int]
    contexts: list[list[int]]  # each row's prompt after the prefix: at least one token
    completions: list[list[int]]  # at least one token each

    @property
    def n_targets(self) -> int:
        return sum(len(c) for c in self.completions)

    @property
    def n_run(self) -> int:
        """Tokens the forward runs: the prefix once, then each row's own tokens."""
        return len(self.prefix) + sum(len(x) + len(c) for x, c in zip(self.contexts, self.completions))


def prefix_rows(prompts: Sequence[list[int]], completions: Sequence[list[int]]) -> PrefixRows:
    """The rows' longest common prompt prefix, kept one token short of the shortest prompt (so every row's first
    completion token is predicted inside its own segment).

    >>> r = prefix_rows([[1, 2, 3, 4], [1, 2, 5]], [[7], [8, 9]])
    >>> r.prefix, r.contexts, r.n_targets, r.n_run
    ([1, 2], [[3, 4], [5]], 3, 8)
    """
    if not prompts or any(not p for p in prompts) or any(not c for c in completions):
        raise ValueError("prefix_rows needs non-empty prompts and completions")
    common = shared_prefix(prompts)  # the decode loop's own measure of the common prefix
    return PrefixRows(list(prompts[0][:common]), [list(p[common:]) for p in prompts], [list(c) for c in completions])


def prefix_log_probs(model: Any, rows: PrefixRows, temperature: float = 1.0) -> torch.Tensor:
    """Log-probs [N] of every completion token of ``rows`` (row by row, in order), with the gradient of ``n``
    separate ``prompt + completion`` forwards, at less compute:

    1. the common prefix (system prompt, template head) runs once, at batch 1, into a KV cache that keeps its
       gradient, then repeated for the ``n`` rows;
    2. the rows' rests (``context + completion[:-1]``) run as one right-padded batch on that cache;
    3. the LM head runs only at the positions that predict a completion token (``logits_to_keep`` as a mask).

    Measured against left-padded whole rows (SFT step, EPYC AVX2): arithmetic 8.7 -> 5.2 s, word problems
    19.2 -> 14.2 s. (Packing the rests into one row under a 4D mask instead: 5.5 and 15.1 s; its attention
    grows with the square of the micro-batch's tokens.)
    """
    hf = hf_model(model)
    dev = next(hf.parameters()).device
    n, p_len = len(rows.completions), len(rows.prefix)
    segs = [ctx + c[:-1] for ctx, c in zip(rows.contexts, rows.completions)]
    t_len = max(len(seg) for seg in segs)
    ids = torch.zeros((n, t_len), dtype=torch.long)  # [n, T]
    attn = torch.zeros((n, p_len + t_len), dtype=torch.long)  # [n, P+T]
    attn[:, :p_len] = 1
    keep = torch.zeros((n, t_len), dtype=torch.bool)  # [n, T] positions that predict a completion token
    for i, (ctx, c, seg) in enumerate(zip(rows.contexts, rows.completions, segs)):
        ids[i, :len(seg)] = torch.tensor(seg)
        attn[i, p_len:p_len + len(seg)] = 1
        keep[i, len(ctx) - 1:len(ctx) - 1 + len(c)] = True
    kwargs: dict[str, Any] = {}
    if p_len:
        cache = DynamicCache(config=hf.config)
        kwargs[cache_kwarg(hf)] = cache
        hf(input_ids=torch.tensor([rows.prefix], device=dev), use_cache=True, logits_to_keep=1, **kwargs)
        cache.batch_repeat_interleave(n)
    pos = (p_len + torch.arange(t_len))[None].expand(n, t_len)  # [n, T]
    out = hf(input_ids=ids.to(dev), attention_mask=attn.to(dev), position_ids=pos.to(dev), use_cache=bool(p_len),
             logits_to_keep=keep.to(dev), **kwargs)
    targets = torch.tensor([t for c in rows.completions for t in c], device=dev)  # [N]
    return selective_log_probs(out.logits.reshape(1, -1, out.logits.shape[-1]), targets[None], temperature)[0]  # [N]


def packed_causal_mask(prefix: int, lengths: Sequence[int], device: torch.device) -> torch.Tensor:
    """[1, 1, S, prefix+S] bool (True: may attend) for segments of ``lengths`` packed after a shared prefix: each
    token sees the whole prefix and the tokens of its own segment up to itself.

    >>> packed_causal_mask(1, [2, 1], torch.device("cpu"))[0, 0].int().tolist()
    [[1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 0, 1]]
    """
    seg = torch.repeat_interleave(torch.arange(len(lengths), device=device),
                                  torch.tensor(list(lengths), device=device))  # [S] segment of each token
    idx = torch.arange(seg.shape[0], device=device)  # [S]
    own = (seg[:, None] == seg[None, :]) & (idx[None, :] <= idx[:, None])  # [S, S]
    full = torch.cat([torch.ones((seg.shape[0], prefix), dtype=torch.bool, device=device), own], dim=1)  # [S, P+S]
    return full[None, None]


__all__ = ["MicroBatch", "PrefixRows", "collate", "completion_log_probs", "is_checkpointing", "packed_causal_mask",
           "prefix_log_probs", "prefix_rows", "selective_log_probs", "shared_prompt_log_probs"]
