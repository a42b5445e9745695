"""Rollouts on the tiny random model: groups, log-probs of the distribution sampled, EOS, seeds."""

from __future__ import annotations

import contextlib

import pytest
import torch

from adapter_helpers import random_lora_b  # tests/rltk
import rltk.rollouts.worker as rollouts
from rltk.logprobs import collate, completion_log_probs
from rltk.policy.adapters import trainable_state
from rltk.policy.base import LoraSettings
from rltk.policy.tiny import tiny_policy
from rltk.core.seeds import row_generators
from rltk.rollouts.worker import PromptRequest, RolloutWorker, SamplingConfig, process_logits, sample_completions, sampling_mode

MSGS = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "what is 2 + 2?"}]]


def _requests():
    return [PromptRequest(i, {"answer": str(i)}, m) for i, m in enumerate(MSGS)]


@pytest.fixture
def fp32_sampling(monkeypatch):
    """Sample without bf16 autocast so log-probs can be compared at fp32 precision."""
    monkeypatch.setattr(rollouts, "autocast", lambda device: contextlib.nullcontext())


def test_groups_have_the_contract_shape():
    pol = tiny_policy(lora=LoraSettings(r=4))
    worker = RolloutWorker(None, SamplingConfig(group_size=3, max_new_tokens=6), policy=pol, worker_id="w0")
    groups = worker.generate(_requests(), seed=1)
    assert [g.index for g in groups] == [0, 1]
    for g, req in zip(groups, _requests()):
        assert g.row == req.row and g.worker_id == "w0" and g.policy_version == 0
        assert len(g.completion_ids) == len(g.logprobs) == len(g.texts) == len(g.truncated) == 3
        for ids, lps, trunc in zip(g.completion_ids, g.logprobs, g.truncated):
            assert len(ids) == len(lps) and 1 <= len(ids) <= 6
            assert all(lp <= 0 for lp in lps)
            eos = pol.tokenizer.eos_token_id
            assert trunc == (ids[-1] != eos) and eos not in ids[:-1]  # stops at the first EOS
        assert g.prompt_ids == pol.tokenizer(pol.tokenizer.apply_chat_template(
            MSGS[g.index], add_generation_prompt=True, tokenize=False), add_special_tokens=False)["input_ids"]


def test_same_seed_same_groups_other_seed_differs():
    pol = tiny_policy(lora=LoraSettings(r=4))
    worker = RolloutWorker(None, SamplingConfig(group_size=4, max_new_tokens=8), policy=pol)
    a = worker.generate(_requests(), seed=7)
    b = worker.generate(_requests(), seed=7)
    c = worker.generate(_requests(), seed=8)
    assert [g.completion_ids for g in a] == [g.completion_ids for g in b]
    assert [g.completion_ids for g in a] != [g.completion_ids for g in c]


def test_eos_stops_and_sets_truncated_false():
    pol = tiny_policy(lora=LoraSettings(r=4))
    eos = pol.tokenizer.eos_token_id
    with torch.no_grad():  # make EOS overwhelmingly likely through the (tied) output embedding bias of the head
        pol.model.get_base_model().lm_head.weight[eos] *= 0
        pol.model.get_base_model().model.norm.weight.fill_(1.0)
    # a large bias on EOS: route it through a LoRA-free path by editing logits via a hook
    handle = pol.model.get_base_model().lm_head.register_forward_hook(
        lambda m, i, o: o.index_fill(-1, torch.tensor([eos]), 50.0))
    try:
        worker = RolloutWorker(None, SamplingConfig(group_size=2, max_new_tokens=5, sampler="shared"), policy=pol)
        groups = worker.generate(_requests(), seed=0)
    finally:
        handle.remove()
    for g in groups:
        assert g.completion_ids == [[eos], [eos]] and g.truncated == [False, False] and g.texts == ["", ""]


@pytest.mark.parametrize("temperature, sampler, atol", [(1.0, "shared", 2e-5), (0.7, "shared", 2e-5), (1.0, "dense", 0.05)])
def test_stored_logprobs_match_the_learner(fp32_sampling, temperature, sampler, atol):
    """The sampler's log-probs (KV-cached, row-dropping decode) equal a full forward's log-probs of the
    same tokens at the same temperature: the importance ratio of stale rollouts starts at 1
    (to fp32 rounding when sharing the model, to bf16 rounding from the dense bf16 copy)."""
    pol = tiny_policy(lora=LoraSettings(r=4))
    random_lora_b(pol.model, 0.3)
    worker = RolloutWorker(None, SamplingConfig(group_size=3, max_new_tokens=10, temperature=temperature, sampler=sampler),
                           policy=pol)
    groups = worker.generate(_requests(), seed=3)
    prompts = [g.prompt_ids for g in groups for _ in g.completion_ids]
    comps = [c for g in groups for c in g.completion_ids]
    stored = [lp for g in groups for lp in g.logprobs]
    mb = collate(prompts, comps, pol.tokenizer.pad_token_id, pol.device)
    pol.model.eval()
    with torch.no_grad():
        recomputed = completion_log_probs(pol.model, mb, temperature)  # [N, T]
    for i, lps in enumerate(stored):
        torch.testing.assert_close(recomputed[i, :len(lps)], torch.tensor(lps), rtol=0, atol=atol)


def test_top_k_top_p_restrict_the_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # top-k 2: renormalised 0.5/0.8, 0.3/0.8
    torch.testing.assert_close(process_logits(logits, 1.0, top_k=2).exp(), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    # top-p 0.9: 0.5 + 0.3 = 0.8 < 0.9, so 0.15 is needed too; 0.05 is dropped
    torch.testing.assert_close(process_logits(logits, 1.0, top_p=0.9).exp(), torch.tensor([[0.5, 0.3, 0.15, 0.0]]) / 0.95)
    # temperature 0.5 squares the probabilities before renormalising
    p2 = torch.tensor([0.25, 0.09, 0.0225, 0.0025])
    torch.testing.assert_close(process_logits(logits, 0.5).exp(), (p2 / p2.sum())[None])


def test_sampled_tokens_stay_in_the_top_k(fp32_sampling):
    pol = tiny_policy(lora=LoraSettings(r=4))
    worker = RolloutWorker(None, SamplingConfig(group_size=4, max_new_tokens=6, top_k=3, sampler="shared"), policy=pol)
    [g] = worker.generate(_requests()[:1], seed=0)
    mb = collate([g.prompt_ids] * 4, g.completion_ids, pol.tokenizer.pad_token_id, pol.device)
    with torch.no_grad():
        out = pol.model(input_ids=mb.input_ids, attention_mask=mb.attention_mask, position_ids=mb.position_ids,
                        logits_to_keep=mb.targets.shape[1] + 1)
    top3 = out.logits[:, :-1].topk(3, dim=-1).indices  # [4, T, 3]
    for i, ids in enumerate(g.completion_ids):
        for j, t in enumerate(ids):
            assert t in top3[i, j].tolist()
        assert all(lp >= -50 for lp in g.logprobs[i])  # never a filtered (-inf) token


def test_merged_sampling_is_identical_and_restores_the_base_exactly(fp32_sampling):
    pol = tiny_policy(lora=LoraSettings(r=4))
    random_lora_b(pol.model, 0.3)
    before = {k: v.clone() for k, v in pol.model.state_dict().items()}
    prompts = [[1, 40, 50, 60], [1, 41, 51]]
    outs = []
    for merge in (True, False):
        with sampling_mode(pol, merge_lora=merge):
            outs.append(sample_completions(pol, prompts, SamplingConfig(group_size=3, max_new_tokens=8),
                                           row_generators(5, [0, 1], 3, pol.device), [pol.tokenizer.eos_token_id]))
    merged, plain = outs
    for gm, gp in zip(merged, plain):
        for a, b in zip(gm, gp):
            assert a.ids == b.ids
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=0, atol=1e-5)
    after = pol.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert pol.model.training is True  # mode restored


def test_dense_copy_follows_the_adapter():
    """The dense bf16 sampling copy equals base + merged LoRA, and is rebuilt when the version moves."""
    pol = tiny_policy(lora=LoraSettings(r=4))
    worker = RolloutWorker(None, SamplingConfig(group_size=2, max_new_tokens=4, sampler="dense"), policy=pol)
    assert worker.dense is not None
    ids = torch.tensor([[1, 40, 50, 60, 70]])

    def gap() -> float:
        with torch.no_grad():
            want = pol.model(input_ids=ids).logits.float()
            got = worker.dense.model(input_ids=ids).logits.float()
        return float((got - want).abs().max())

    fresh = gap()
    assert fresh < 0.02  # bf16 rounding only
    random_lora_b(pol.model, 1.0)
    stale = gap()
    assert stale > 10 * fresh  # the copy is stale until the learner's new version arrives
    worker.set_version(1)
    assert gap() < stale / 10 and worker.policy_version() == 1


def test_sampling_mode_restores_weights_after_an_error():
    pol = tiny_policy(lora=LoraSettings(r=4))
    random_lora_b(pol.model, 0.3)
    before = {k: v.clone() for k, v in pol.model.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"):
        with sampling_mode(pol, merge_lora=True):
            raise RuntimeError("boom")
    assert all(torch.equal(before[k], v) for k, v in pol.model.state_dict().items())


def test_load_adapter_state_sets_version_and_weights():
    learner_pol = tiny_policy(lora=LoraSettings(r=4))
    random_lora_b(learner_pol.model, 0.3, seed=2)
    worker = RolloutWorker(None, SamplingConfig(group_size=2, max_new_tokens=4), policy=tiny_policy(lora=LoraSettings(r=4)))
    worker.load_adapter_state(trainable_state(learner_pol.model), version=5)
    assert worker.policy_version() == 5
    a, b = trainable_state(learner_pol.model), trainable_state(worker.policy.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert worker.generate(_requests()[:1], seed=0)[0].policy_version == 5


def test_sampling_config_validation():
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=1.5)


def test_inverse_cdf_sampling_draws_each_token_at_its_probability():
    """sample_tokens (the sampler of rollouts and sampled evals) against the probabilities: 64,000 draws over a
    49k-token row, the frequency of each of the likely tokens and of the tail within 4 standard errors; masked
    tokens never."""
    from rltk.policy.decode import sample_tokens

    g = torch.Generator().manual_seed(0)
    logits = torch.full((49152,), float("-inf"))
    logits[[7, 100, 3000, 49151]] = torch.tensor([0.0, 1.0, 2.0, -1.0])
    logits[5000:5100] = -2.0  # a tail of 100 unlikely tokens
    probs = torch.softmax(logits, -1)
    n = 64_000
    draws = torch.cat([sample_tokens(probs.expand(1000, -1), torch.rand(1000, generator=g)) for _ in range(n // 1000)])
    counts = torch.bincount(draws, minlength=49152).double()
    for tok in (7, 100, 3000, 49151):
        p = float(probs[tok])
        assert abs(counts[tok] / n - p) < 4 * (p * (1 - p) / n) ** 0.5, (tok, float(counts[tok] / n), p)
    tail = float(probs[5000:5100].sum())
    assert abs(counts[5000:5100].sum() / n - tail) < 4 * (tail * (1 - tail) / n) ** 0.5
    assert counts[probs == 0].sum() == 0  # a token of probability 0 is never drawn


def test_inverse_cdf_sampling_over_a_vocabulary_with_a_partial_last_block():
    """A vocabulary that is not a whole number of blocks (1,000 = 3 x 256 + 232): the tail block's tokens are drawn
    at their probabilities, masses of 0 (whole blocks of them, and tokens between likely ones) never, and a row
    whose mass sits in one token always draws it."""
    from rltk.policy.decode import sample_tokens

    g = torch.Generator().manual_seed(1)
    probs = torch.zeros(1000)
    probs[[255, 256, 990, 999]] = torch.tensor([0.1, 0.2, 0.3, 0.4])
    n = 40_000
    draws = sample_tokens(probs.expand(n, -1), torch.rand(n, generator=g))
    counts = torch.bincount(draws, minlength=1000).double()
    for tok in (255, 256, 990, 999):
        p = float(probs[tok])
        assert abs(counts[tok] / n - p) < 4 * (p * (1 - p) / n) ** 0.5, (tok, float(counts[tok] / n), p)
    assert counts[probs == 0].sum() == 0
    one = torch.zeros(3, 1000)
    one[0, 0], one[1, 511], one[2, 999] = 1.0, 2.0, 0.5
    for u in (0.0, 0.5, 1 - 2 ** -24):
        assert sample_tokens(one, torch.full((3,), u)).tolist() == [0, 511, 999]
