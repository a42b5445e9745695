"""The policy losses and the mismatch correction in the learner and through ``rltk.grpo.train`` on the tiny model:
the sampler's log-probs reach the learner, TIS / MIS change the gradient as derived, the metrics are logged,
and each loss learns."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from rltk.core.config import from_dict
from rltk.grpo import GRPOJobConfig, ScoredGroup, build_train_batch, train
from rltk.learner import Learner, LossConfig, TrainBatch
from rltk.logprobs import collate, completion_log_probs
from rltk.loss import BatchTotals
from rltk.metrics import read_jsonl
from rltk.optim import OptimFields
from rltk.policy.base import LoraSettings, Policy
from rltk.policy.tiny import tiny_policy
from rltk.rollouts import LocalRollouts, PromptRequest, RolloutGroup, RolloutWorker, SamplingConfig
from test_learner import _grads_at_step  # tests/rltk: the gradient recorder the learner tests use

PROMPTS = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [5, 9]]
COMPLETIONS = [[20, 21, 22], [23], [24, 25], [26, 27, 28, 29]]
ADVANTAGES = [1.0, -1.0, 0.5, -0.5]


@pytest.fixture
def fp32(monkeypatch):
    monkeypatch.setattr(Policy, "autocast", lambda self: contextlib.nullcontext())


def _policy():
    pol = tiny_policy(lora=LoraSettings(r=4))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in pol.model.named_parameters():
            if "lora_B" in n:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return pol


def _current_logprobs(pol) -> torch.Tensor:
    mb = collate(PROMPTS, COMPLETIONS, pol.tokenizer.pad_token_id, pol.device)
    with torch.no_grad():
        return completion_log_probs(pol.model, mb, 1.0)  # [4, T]


def _batch(sampler=None, behaviour=None) -> TrainBatch:
    mask = torch.zeros(4, 4)
    for i, c in enumerate(COMPLETIONS):
        mask[i, :len(c)] = 1
    return TrainBatch([list(p) for p in PROMPTS], [list(c) for c in COMPLETIONS], list(ADVANTAGES),
                      behaviour or [None] * 4, BatchTotals.of(mask, max_tokens=6), sampler)


def _update(cfg: LossConfig, batch: TrainBatch):
    """One learner step; returns its stats and the gradient it stepped with (no clipping)."""
    learner = Learner(_policy(), OptimFields(lr=1e-3, micro_batch_size=8, max_grad_norm=0), 10, dense_base=False)
    seen = _grads_at_step(learner)
    return learner.grpo_update(batch, cfg, 0), seen


def _sampler_at(log_ratio: float) -> list[list[float]]:
    """Sampler log-probs such that learner / sampler = exp(log_ratio) on every token."""
    cur = _current_logprobs(_policy())
    return [(cur[i, :len(c)] - log_ratio).tolist() for i, c in enumerate(COMPLETIONS)]


def test_tis_doubles_the_gradient_where_every_ratio_is_above_the_cap(fp32):
    # learner / sampler = 3 on every token, C = 2: every token's loss is weighted min(3, 2) = 2, so the gradient
    # is exactly twice the uncorrected one (a power of two scales floats exactly)
    sampler = _sampler_at(math.log(3.0))
    plain, g_plain = _update(LossConfig(), _batch(sampler))
    tis, g_tis = _update(LossConfig(is_correction="tis", is_cap=2.0), _batch(sampler))
    assert any(g.abs().sum() > 0 for g in g_plain)
    for a, b in zip(g_tis, g_plain):
        torch.testing.assert_close(a, 2 * b, rtol=1e-6, atol=0)
    for st in (plain, tis):  # measured with or without a correction: 10 tokens at ratio 3
        m = st.mismatch.metrics()
        assert m["mismatch_ratio_mean"] == pytest.approx(3.0, rel=1e-4)
        assert m["mismatch_ratio_max"] == pytest.approx(3.0, rel=1e-4)
    assert plain.mismatch.tokens == tis.mismatch.tokens == 10
    assert plain.mismatch.metrics()["is_corrected_fraction"] == 0.0 and tis.mismatch.metrics()["is_corrected_fraction"] == 1.0
    assert tis.policy_loss == pytest.approx(2 * plain.policy_loss, rel=1e-6)


def test_mis_drops_every_token_outside_the_range_and_keeps_ratios_inside(fp32):
    # ratio 3 outside [1/2, 2]: every token dropped, no gradient at all
    _, grads = _update(LossConfig(is_correction="mis", is_cap=2.0), _batch(_sampler_at(math.log(3.0))))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)
    # ratio 1.5 inside: each token weighted 1.5, the gradient 1.5x the uncorrected one
    sampler = _sampler_at(math.log(1.5))
    _, g_plain = _update(LossConfig(), _batch(sampler))
    st, g_mis = _update(LossConfig(is_correction="mis", is_cap=2.0), _batch(sampler))
    assert st.mismatch.metrics()["is_corrected_fraction"] == 0.0
    for a, b in zip(g_mis, g_plain):  # the ratios are 1.5 to float rounding (the learner's batch is cut differently)
        assert (a - 1.5 * b).abs().max() <= 1e-5 * b.abs().max()


def test_stale_rows_and_rows_without_sampler_logprobs_are_not_corrected(fp32):
    sampler = _sampler_at(math.log(3.0))
    # no sampler log-probs at all: nothing measured, TIS changes nothing
    st, g_none = _update(LossConfig(is_correction="tis"), _batch(None))
    _, g_plain = _update(LossConfig(), _batch(None))
    assert st.mismatch.metrics()["mismatch_ratio_mean"] is None
    assert all(torch.equal(a, b) for a, b in zip(g_none, g_plain))
    # stale rows: their old log-probs are the sampler's (behaviour), so there is no learner/sampler mismatch to measure
    st, _ = _update(LossConfig(is_correction="tis"), _batch(sampler, behaviour=sampler))
    assert st.mismatch.tokens == 0


def test_build_train_batch_carries_the_sampler_logprobs_of_every_completion():
    group = RolloutGroup(0, {}, [1, 2], [[3, 4], [5]], [[-0.1, -0.2], [-0.3]], ["a", "b"], [False, False], policy_version=0)
    batch = build_train_batch([ScoredGroup(group, [1.0, 0.0], {})], torch.tensor([[0.5, -0.5]]), 0, False, 8)
    assert batch.behaviour_logprobs == [None, None]  # on-policy: the old log-probs come from the learner
    assert batch.sampler_logprobs == [[-0.1, -0.2], [-0.3]]
    stale = build_train_batch([ScoredGroup(group, [1.0, 0.0], {})], torch.tensor([[0.5, -0.5]]), 1, False, 8)
    assert stale.behaviour_logprobs == stale.sampler_logprobs == [[-0.1, -0.2], [-0.3]]


def test_the_sampler_and_learner_logprobs_agree_on_the_tiny_model():
    # what the mismatch metrics measure: the worker's stored log-probs vs the learner's forward, same adapter
    pol = _policy()
    worker = RolloutWorker(None, SamplingConfig(group_size=4, max_new_tokens=6), policy=pol)
    [g] = worker.generate([PromptRequest(0, {}, [{"role": "user", "content": "What is 2 + 3?"}])], seed=0)
    mb = collate([g.prompt_ids] * 4, g.completion_ids, pol.tokenizer.pad_token_id, pol.device, sampler=g.logprobs)
    with torch.no_grad(), pol.autocast():
        learner = completion_log_probs(pol.model, mb, 1.0)
    ratio = torch.exp(learner - mb.sampler)[mb.mask.bool()]
    assert mb.has_sampler.all() and 0.9 < float(ratio.min()) <= float(ratio.max()) < 1.1


# ----------------------------------------------------------------------------- through rltk.grpo.train

REWARD_SRC = '''
def likes_a(completions, **columns):
    return [c.count("a") / max(len(c), 1) for c in completions]
'''


@pytest.fixture
def mismatched_sampler(monkeypatch):
    """The tiny model samples and learns in fp32 (learner / sampler = 1 to rounding): make every other completion's
    stored log-probs log 3 lower, as a sampler that disagrees with the learner would (ratio 3 on those tokens)."""
    real_collect = LocalRollouts.collect

    def collect(self, handle):
        groups = real_collect(self, handle)
        for g in groups:
            g.logprobs = [[v - math.log(3.0) for v in lp] if j % 2 == 0 else lp for j, lp in enumerate(g.logprobs)]
        return groups

    monkeypatch.setattr(LocalRollouts, "collect", collect)


@pytest.mark.parametrize("policy_loss, is_correction", [("gspo", "none"), ("cispo", "none"), ("ppo_clip", "tis"),
                                                        ("ppo_clip", "mis")])
def test_each_policy_loss_and_correction_raises_the_reward_it_optimises(tmp_path, policy_loss, is_correction, request):
    """As tests/rltk/test_grpo.py::test_grpo_raises_the_reward_it_optimises (a reward that likes the letter 'a',
    lr 0.02, temperature 0.3), with ``mu: 2`` so the second optimizer step sees ratios away from 1 and the loss's
    own clipping acts; the corrections run against a sampler whose log-probs are off by log 3 on half the
    completions."""
    if is_correction != "none":
        request.getfixturevalue("mismatched_sampler")
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARD_SRC)
    cfg = from_dict(GRPOJobConfig, {
        "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 8, "alpha": 16}},
        "data": {"source": "arithmetic", "limit": 40},
        "sampling": {"group_size": 8, "max_new_tokens": 8, "temperature": 0.3},
        "grpo": {"steps": 6, "prompts_per_step": 4, "lr": 0.02, "micro_batch_size": 16, "mu": 2,
                 "policy_loss": policy_loss, "is_correction": is_correction, "is_cap": 2.0},
        "rewards": [{"name": f"{path}:likes_a"}],
        "checkpoint": {"every": 0}, "log": {"live": False, "samples_every": 0},
        "run_dir": str(tmp_path / "run"),
    })
    result = train(cfg)
    hist = result.history
    # measured: 0.023 -> 0.38 (gspo), 0.32 (cispo), 0.37 (ppo_clip alone)
    assert hist[-1]["reward_mean"] > 3 * hist[0]["reward_mean"], [h["reward_mean"] for h in hist]
    # mu 2: two optimizer steps per GRPO step, none on a step whose groups all tied (no signal, skipped)
    assert {h["optimizer_steps"] for h in hist} <= {0, 2} and sum(h["optimizer_steps"] == 2 for h in hist) >= 4
    lines = read_jsonl(result.run_dir / "metrics.jsonl")  # the mismatch of every step is in metrics.jsonl
    skipped = [line for line in lines if line["optimizer_steps"] == 0]
    assert all(line["mismatch_ratio_max"] is None for line in skipped)  # no learner pass: no figure made up
    lines = [line for line in lines if line["optimizer_steps"] > 0]
    assert all(line["mismatch_ratio_max"] >= line["mismatch_ratio_mean"] > 0 for line in lines)
    if policy_loss == "gspo":  # mu 2: the sequence ratio leaves GSPO's narrow range (3e-4, 4e-4)
        assert min(h["clip_fraction"] for h in hist if h["optimizer_steps"]) > 0.1  # measured 0.34-0.44
    if is_correction == "none":  # fp32 sampler and learner: they agree
        assert all(line["mismatch_ratio_max"] == pytest.approx(1.0, abs=1e-3) for line in lines)
    else:  # about half the tokens have ratio 3: truncated to 2 by tis, dropped by mis
        assert all(line["mismatch_ratio_max"] == pytest.approx(3.0, rel=1e-3) for line in lines)
        assert all(0.2 < line["is_corrected_fraction"] < 0.8 for line in lines)
