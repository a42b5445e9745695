"""The embedded SmolLM2-135M on a handful of arithmetic items (slow: loads the real model)."""

from __future__ import annotations

import pytest
import torch

from evals import compare, evaluate
from evals.generation import GenerationSettings, generate, render_prompts
from evals.tasks import get_task
from rewards.math import verify
from rltk.models import load_policy


@pytest.fixture(scope="module")
def smollm2():
    return load_policy("smollm2-135m", quant="none", trainable=False)


@pytest.mark.slow
def test_batched_eval_on_the_embedded_model_matches_one_at_a_time_generate(smollm2, fp32):
    task = get_task("arithmetic")
    rows = task.load(None).rows[:6]
    result = evaluate(smollm2, task, rows=rows, max_new_tokens=16, batch_size=6, progress=False)
    tok = smollm2.tokenizer
    for row, rec in zip(rows, result.records):
        enc = tok(rec["prompt"], return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            ref = smollm2.model.generate(**enc, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
        text = tok.decode(ref[0, enc.input_ids.shape[1]:], skip_special_tokens=True)
        sample = rec["samples"][0]
        assert sample["completion"] == text  # padding, caching and early exit change nothing
        assert rec["gold"] == row["answer"]
        # the recorded correctness is the reward's verdict on the recorded answer
        assert sample["correct"] == verify(row["answer"], sample["answer"])
    m = result.metrics
    assert m["n_items"] == 6 and 0 < m["mean_completion_tokens"] <= 16
    assert m["accuracy"] == sum(r["score"] for r in result.records) / 6
    assert m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
    # a run compared with itself: no flips, p = 1
    c = compare(result, result)
    assert not c.improved and not c.regressed and c.p_value == 1.0


@pytest.mark.slow
def test_sampled_completions_of_the_embedded_model_are_reproducible(smollm2):
    prompts = render_prompts(smollm2, [[{"role": "user", "content": "What is 12 + 30?"}]] * 2)
    s = GenerationSettings(max_new_tokens=8, n_samples=3, temperature=1.0, seed=11, batch_size=6)
    a = generate(smollm2, prompts, s)
    b = generate(smollm2, prompts, s)
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in b]
    assert len({c.text for c in a[0]}) > 1  # different samples of the same prompt
