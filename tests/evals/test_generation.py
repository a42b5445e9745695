from __future__ import annotations

import pytest
import torch

from evals.generation import GenerationSettings, GenerationStats, generate, render_prompts
from rltk.core.errors import UserError

QUESTIONS = ["hi", "what is 2+2?", "tell me a story about a cat", "a", "why is the sky blue? explain", "ok"]


def _prompts(pol):
    return render_prompts(pol, [[{"role": "user", "content": q}] for q in QUESTIONS])


def _reference_greedy(pol, prompt, max_new_tokens):
    """Plain one-at-a-time ``model.generate`` (no padding), the reference the batched loop must match."""
    tok = pol.tokenizer
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = pol.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    ids = out[0, enc.input_ids.shape[1]:].tolist()
    return tok.decode(ids, skip_special_tokens=True), len(ids)


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_batched_greedy_matches_one_at_a_time_generate(varied_policy, fp32, batch_size):
    prompts = _prompts(varied_policy)
    out = generate(varied_policy, prompts, GenerationSettings(max_new_tokens=16, batch_size=batch_size))
    assert len(out) == len(prompts)
    stopped_early = 0
    for p, (c,) in zip(prompts, out):
        text, n = _reference_greedy(varied_policy, p, 16)
        assert (c.text, c.tokens) == (text, n)
        assert c.truncated == (n == 16 and varied_policy.tokenizer.eos_token_id not in varied_policy.tokenizer(c.text)["input_ids"])
        stopped_early += n < 16
    assert stopped_early >= 1  # some rows hit EOS and left the batch early: that path is exercised


def test_sampling_is_seeded_per_row_and_independent_of_batching(varied_policy, fp32):
    prompts = _prompts(varied_policy)
    s = dict(max_new_tokens=10, n_samples=4, temperature=1.0, seed=3)
    a = generate(varied_policy, prompts, GenerationSettings(batch_size=32, **s))
    b = generate(varied_policy, prompts, GenerationSettings(batch_size=4, **s))
    c = generate(varied_policy, prompts[::-1], GenerationSettings(batch_size=8, **s))[::-1]
    texts = lambda r: [[x.text for x in item] for item in r]  # noqa: E731
    assert texts(a) == texts(b)
    assert len(set(texts(a)[2])) > 1  # the samples of one prompt differ
    # reversed prompt order changes row indices, so the streams change (seeded by position)
    assert texts(c) != texts(a)
    other = generate(varied_policy, prompts, GenerationSettings(batch_size=32, **{**s, "seed": 4}))
    assert texts(other) != texts(a)


def test_top_p_near_zero_is_greedy(varied_policy, fp32):
    prompts = _prompts(varied_policy)
    greedy = generate(varied_policy, prompts, GenerationSettings(max_new_tokens=8))
    nucleus = generate(varied_policy, prompts, GenerationSettings(max_new_tokens=8, temperature=1.0, top_p=1e-6, seed=1))
    assert [g[0].text for g in greedy] == [n[0].text for n in nucleus]


def test_stats_count_tokens_and_model_mode_is_restored(varied_policy):
    varied_policy.model.train()
    stats = GenerationStats()
    seen = []
    out = generate(varied_policy, _prompts(varied_policy), GenerationSettings(max_new_tokens=6, batch_size=3), progress=lambda d, t: seen.append((d, t)), stats=stats)
    assert stats.tokens == sum(c.tokens for item in out for c in item)
    assert stats.sequences == len(QUESTIONS) and stats.seconds > 0
    assert seen[-1] == (len(QUESTIONS), stats.tokens)
    assert varied_policy.model.training  # put back in train mode after generating


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_samples": 4}, "would all be identical"),
        ({"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
        ({"top_p": 0.0, "temperature": 1.0}, "top_p must be in"),
        ({"batch_size": 0}, "batch size must be >= 1"),
    ],
)
def test_bad_settings_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        GenerationSettings(**kwargs)
