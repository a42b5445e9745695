"""The learner on the tiny model: exact accumulation, zero-advantage skipping, KL, NaN safety, mu."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from adapter_helpers import random_lora_b  # tests/rltk
from rltk.learner import Learner, LossConfig, TrainBatch, lr_at
from rltk.optim import OptimFields
from rltk.logprobs import _TokenLogProb, collate, completion_log_probs, is_checkpointing
from rltk.loss import BatchTotals, constant_normalizer, grpo_loss, sequence_mean, token_mean
from rltk.policy.adapters import trainable_state
from rltk.policy.base import LoraSettings, Policy
from rltk.policy.loading import load_policy
from rltk.policy.memory import FrozenLinear, contiguous_head, dense_frozen_base
from rltk.policy.tiny import tiny_policy

PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [5, 9]]
COMPLETIONS = [[20, 21, 22], [23], [24, 25], [26, 27, 28, 29]]


def _policy(seed=0):
    pol = tiny_policy(lora=LoraSettings(r=4))
    random_lora_b(pol.model, 0.1, seed)  # so the adapter matters
    return pol


def _batch(advantages, behaviour=None):
    n = len(PROMPTS)
    mask = torch.zeros(n, max(map(len, COMPLETIONS)))
    for i, c in enumerate(COMPLETIONS):
        mask[i, :len(c)] = 1
    return TrainBatch([list(p) for p in PROMPTS], [list(c) for c in COMPLETIONS], list(advantages),
                      behaviour or [None] * n, BatchTotals.of(mask, max_tokens=6))


@pytest.fixture
def fp32(monkeypatch):
    """No bf16 autocast: gradients of differently cut micro-batches then agree to fp32 rounding."""
    monkeypatch.setattr(Policy, "autocast", lambda self: contextlib.nullcontext())


def _grads_at_step(learner: Learner) -> list[torch.Tensor]:
    """Record the accumulated (clipped) gradients the optimizer steps with."""
    seen: list[torch.Tensor] = []
    step = learner.optimizer.step

    def recording_step(*a, **k):
        seen.extend(p.grad.detach().clone() for p in learner.params)
        return step(*a, **k)

    learner.optimizer.step = recording_step
    return seen


def _assert_close_to_fp32_rounding(got: torch.Tensor, want: torch.Tensor) -> None:
    # sums cut differently differ by reassociation only: ~1e-7 of the tensor's scale
    assert (got - want).abs().max() <= 1e-5 * want.abs().max(), (got - want).abs().max()


def _naive_grads(pol, batch, cfg: LossConfig) -> list[torch.Tensor]:
    """Reference: the whole batch in one forward, no skipping, the loss from rltk.loss."""
    params = [p for p in pol.model.parameters() if p.requires_grad]
    mb = collate(batch.prompt_ids, batch.completion_ids, pol.tokenizer.pad_token_id, pol.device, batch.advantages)
    logp = completion_log_probs(pol.model, mb, cfg.temperature)
    agg = {"sequence": sequence_mean, "token": token_mean, "constant": constant_normalizer}[cfg.loss_agg]
    parts = grpo_loss(logp, logp.detach(), mb.advantages, mb.mask, batch.totals, cfg.epsilon_low, cfg.epsilon_high,
                      0.0, None, agg)
    parts.loss.backward()
    return [p.grad.detach().clone() for p in params]


@pytest.mark.parametrize("loss_agg", ["sequence", "token", "constant"])
def test_micro_batched_skipping_update_equals_the_naive_full_batch_gradient(fp32, loss_agg):
    # advantage 0 on two sequences: the learner skips them (beta 0), the naive pass runs them: same gradient
    advantages = [1.0, 0.0, -0.5, 0.0]
    cfg = LossConfig(loss_agg=loss_agg)
    a, b = _policy(), _policy()
    learner = Learner(a, OptimFields(lr=1e-2, micro_batch_size=1, max_grad_norm=0), total_steps=10, dense_base=False)
    got = _grads_at_step(learner)
    stats = learner.grpo_update(_batch(advantages), cfg, step=0)
    assert stats.applied == 1 and stats.skipped is None and stats.sequences == 2
    want = _naive_grads(b, _batch(advantages), cfg)
    assert len(got) == len(want) and any(w.abs().sum() > 0 for w in want)
    for g, w in zip(got, want):
        _assert_close_to_fp32_rounding(g, w)


def test_micro_batch_size_does_not_change_the_gradient(fp32):
    a, b = _policy(), _policy()
    la = Learner(a, OptimFields(micro_batch_size=1), 10, dense_base=False)
    lb = Learner(b, OptimFields(micro_batch_size=3), 10, dense_base=False)
    ga, gb = _grads_at_step(la), _grads_at_step(lb)
    la.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(), 0)
    lb.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(), 0)
    for x, y in zip(ga, gb):
        _assert_close_to_fp32_rounding(x, y)


def test_gradients_are_clipped_to_max_grad_norm(fp32):
    learner = Learner(_policy(), OptimFields(max_grad_norm=1e-3), 10, dense_base=False)
    grads = _grads_at_step(learner)
    stats = learner.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(), 0)
    assert stats.grad_norm > 1e-3  # the norm before clipping is reported
    assert torch.sqrt(sum((g ** 2).sum() for g in grads)).item() == pytest.approx(1e-3, rel=1e-4)


def _group_batch(advantages):
    """Two prompts with three completions each, as GRPO produces them."""
    prompts = [PROMPTS[0]] * 3 + [PROMPTS[2]] * 3
    comps = [[20, 21, 22], [23], [24, 25], [26, 27, 28, 29], [30, 31], [32]]
    mask = torch.zeros(6, 4)
    for i, c in enumerate(comps):
        mask[i, :len(c)] = 1
    return TrainBatch([list(p) for p in prompts], comps, list(advantages), [None] * 6, BatchTotals.of(mask, max_tokens=6))


@pytest.mark.parametrize("comps", [[[20, 21, 22], [23], [24, 25, 26, 27]], [[20, 21], [], [24, 25, 26, 27, 28, 29, 30]]],
                         ids=["lengths-3-1-4", "with-an-empty-one"])
def test_shared_prompt_forward_equals_separate_sequences(fp32, comps):
    """The shared path packs the completions into one row on the prompt's cache (4D mask): same values and gradients
    as left-padded separate sequences, zeros past each completion's end."""
    pol = _policy()
    shared = collate([PROMPTS[2]] * 3, comps, pol.tokenizer.pad_token_id, pol.device, share_prompt=True)
    padded = collate([PROMPTS[2]] * 3, comps, pol.tokenizer.pad_token_id, pol.device)
    a = completion_log_probs(pol.model, shared)
    b = completion_log_probs(pol.model, padded)
    torch.testing.assert_close(a * padded.mask, b * padded.mask, rtol=0, atol=1e-5)
    assert not (a * (1 - padded.mask)).any()
    params = [p for p in pol.model.parameters() if p.requires_grad]
    ga = torch.autograd.grad((a * padded.mask).sum(), params)
    gb = torch.autograd.grad((b * padded.mask).sum(), params)
    for x, y in zip(ga, gb):  # LoRA learns through the prompt's (shared) positions too
        _assert_close_to_fp32_rounding(x, y)
    with pytest.raises(ValueError, match="one prompt"):
        collate([PROMPTS[0], PROMPTS[1]], comps[:2], 0, pol.device, share_prompt=True)


def test_groups_share_micro_batches_and_the_gradient_is_unchanged(fp32):
    advantages = [1.0, -0.5, -0.5, 0.7, 0.0, -0.7]
    a, b = _policy(), _policy()
    learner = Learner(a, OptimFields(micro_batch_size=2, max_grad_norm=0), 10, dense_base=False)
    plan = learner.plan_micro_batches(_group_batch(advantages), [0, 1, 2, 3, 5])
    assert plan == [([0, 1], True), ([2], False), ([3, 5], True)]  # one prompt per micro-batch, at most 2 rows
    got = _grads_at_step(learner)
    learner.grpo_update(_group_batch(advantages), LossConfig(loss_agg="token"), 0)
    want = _naive_grads(b, _group_batch(advantages), LossConfig(loss_agg="token"))
    for g, w in zip(got, want):
        _assert_close_to_fp32_rounding(g, w)


def test_dense_frozen_base_computes_what_qlora_computes():
    pol = load_policy("tiny-random", quant="nf4", lora=LoraSettings(r=4))
    mb = collate(PROMPTS, COMPLETIONS, pol.tokenizer.pad_token_id, pol.device)
    with torch.no_grad(), pol.autocast():
        want = completion_log_probs(pol.model, mb)
    assert dense_frozen_base(pol.model) == 15  # 2 layers x 7 adapted linears + the tied head's own copy
    import bitsandbytes as bnb

    assert not any(isinstance(m, bnb.nn.Linear4bit) for m in pol.model.modules())
    with torch.no_grad(), pol.autocast():
        got = completion_log_probs(pol.model, mb)
    torch.testing.assert_close(got, want, rtol=0, atol=0.02)  # the same weights; bf16 kernels differ slightly
    assert all(p.dtype == torch.float32 for p in pol.model.parameters() if p.requires_grad)  # LoRA stays fp32
    assert dense_frozen_base(pol.model) == 0  # idempotent
    with torch.no_grad():  # and the policy still runs outside autocast (the frozen layers cast their input)
        plain = completion_log_probs(pol.model, mb)
    assert plain.dtype == torch.float32 and torch.allclose(plain, want, atol=0.05)


def test_kl_is_zero_when_adapters_are_zero():
    pol = tiny_policy(lora=LoraSettings(r=4))  # fresh LoRA: B = 0, so the adapted policy is the base
    learner = Learner(pol, OptimFields(), 10)
    mb = collate(PROMPTS, COMPLETIONS, pol.tokenizer.pad_token_id, pol.device)
    ref = learner.reference_log_probs(mb, 1.0)
    with torch.no_grad(), pol.autocast():
        cur = completion_log_probs(pol.model, mb, 1.0)
    assert torch.equal(ref, cur)
    stats = learner.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(beta=0.1), 0)
    assert stats.kl == 0.0 and stats.applied == 1
    # after the step the adapter differs from the base: KL becomes positive
    stats = learner.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(beta=0.1), 1)
    assert stats.kl > 0


def test_reference_is_the_base_with_adapters_disabled():
    pol = _policy()
    learner = Learner(pol, OptimFields(), 10)
    mb = collate(PROMPTS, COMPLETIONS, pol.tokenizer.pad_token_id, pol.device)
    base = tiny_policy()  # same seed, no LoRA
    with torch.no_grad(), pol.autocast():
        want = completion_log_probs(base.model, mb, 1.0)
    torch.testing.assert_close(learner.reference_log_probs(mb, 1.0), want, rtol=0, atol=1e-6)


def test_all_zero_advantages_skip_without_touching_the_adapter():
    pol = _policy()
    before = trainable_state(pol.model)
    stats = Learner(pol, OptimFields(lr=1e-2), 10).grpo_update(_batch([0.0] * 4), LossConfig(), 0)
    assert stats.applied == 0 and "no learning signal" in stats.skipped
    after = trainable_state(pol.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_nonfinite_loss_is_skipped_and_reported():
    pol = _policy()
    learner = Learner(pol, OptimFields(lr=1e-2), 10)
    before = trainable_state(pol.model)
    stats = learner.grpo_update(_batch([1.0, float("nan"), 0.5, -0.5]), LossConfig(), 0)
    assert stats.skipped == "non-finite loss" and stats.applied == 0 and learner.version == 0
    after = trainable_state(pol.model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in learner.params)  # nothing left over for the next step


def test_mu_runs_several_optimizer_steps_and_clipping_starts_after_the_first():
    pol = _policy()
    learner = Learner(pol, OptimFields(lr=0.05, micro_batch_size=2), 10)
    stats = learner.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(mu=3, epsilon_low=0.01, epsilon_high=0.01), 0)
    assert stats.applied == 3 and learner.version == 3
    assert stats.clip_fraction > 0  # iterations 2 and 3 see a ratio that moved by more than 1%


def test_stale_rollouts_use_the_behaviour_logprobs():
    pol = _policy()
    mb = collate(PROMPTS, COMPLETIONS, pol.tokenizer.pad_token_id, pol.device)
    with torch.no_grad(), pol.autocast():
        cur = completion_log_probs(pol.model, mb, 1.0)
    # the sampler's log-probs were log 2 higher: ratio 0.5 < 1 - eps on every token; with A < 0 all clipped
    behaviour = [(cur[i, :len(c)] + 0.6931).tolist() for i, c in enumerate(COMPLETIONS)]
    before = trainable_state(pol.model)
    stats = Learner(pol, OptimFields(lr=1e-2), 10).grpo_update(_batch([-1.0] * 4, behaviour), LossConfig(), 0)
    assert stats.clip_fraction == 1.0
    assert stats.grad_norm == 0.0  # every token clipped: no gradient at all
    after = trainable_state(pol.model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_state_dict_round_trip_continues_identically():
    a, b = _policy(), _policy()
    la, lb = Learner(a, OptimFields(lr=1e-2), 10), Learner(b, OptimFields(lr=1e-2), 10)
    la.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(), 0)
    b.model.load_state_dict(copy.deepcopy(a.model.state_dict()))
    lb.load_state_dict(copy.deepcopy(la.state_dict()))
    la.grpo_update(_batch([-1.0, 1.0, 0.5, -0.5]), LossConfig(), 1)
    lb.grpo_update(_batch([-1.0, 1.0, 0.5, -0.5]), LossConfig(), 1)
    sa, sb = trainable_state(a.model), trainable_state(b.model)
    assert lb.version == la.version == 2
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_lr_schedule():
    cfg = OptimFields(lr=2.0, warmup_steps=4)
    assert [lr_at(s, 10, cfg) for s in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    cos = OptimFields(lr=1.0, schedule="cosine", min_lr_ratio=0.5)
    assert lr_at(0, 10, cos) == 1.0 and lr_at(10, 10, cos) == pytest.approx(0.5) and lr_at(5, 10, cos) == pytest.approx(0.75)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_selective_log_probs_backward_matches_autograd(temperature):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (3, 5), generator=gen)
    weights = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    want = torch.log_softmax(logits / temperature, -1).gather(-1, targets[..., None]).squeeze(-1)
    got = _TokenLogProb.apply(logits, targets, temperature)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-6)  # fp32 inside
    (g_want,) = torch.autograd.grad((want * weights).sum(), logits)
    (g_got,) = torch.autograd.grad((got.double() * weights).sum(), logits)
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=1e-6)


def test_contiguous_head_keeps_the_weight_and_the_logits():
    model = tiny_policy(seed=3).model
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.randint(0, model.config.vocab_size, (3, 7))
    hidden = model.model(input_ids=ids).last_hidden_state[:, -2:]  # a non-contiguous slice, as in a prefill
    before = model.get_output_embeddings()(hidden)
    weight = model.get_output_embeddings().weight
    contiguous_head(model)
    head = model.get_output_embeddings()
    assert isinstance(head, FrozenLinear) and head.weight.data_ptr() == weight.data_ptr()
    torch.testing.assert_close(head(hidden), before)


def test_gradient_checkpointing_gives_the_same_gradient(fp32):
    a, b = _policy(), _policy()
    b.model.get_base_model().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    b.model.train()
    assert is_checkpointing(b.model) and not is_checkpointing(a.model)
    la = Learner(a, OptimFields(micro_batch_size=2), 10, dense_base=False)
    lb = Learner(b, OptimFields(micro_batch_size=2), 10, dense_base=False)
    ga, gb = _grads_at_step(la), _grads_at_step(lb)
    la.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(), 0)
    lb.grpo_update(_batch([1.0, -1.0, 0.5, -0.5]), LossConfig(), 0)
    assert any(x.abs().sum() > 0 for x in gb)
    for x, y in zip(ga, gb):
        _assert_close_to_fp32_rounding(x, y)
