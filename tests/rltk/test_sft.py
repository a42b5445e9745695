"""SFT on the tiny model: completion-only loss, lower loss, a loadable adapter GRPO starts from."""

from __future__ import annotations

import json
import random

import pytest
import torch

from adapter_helpers import random_lora_b  # tests/rltk
from rltk.core.config import from_dict
from rltk.data import DataConfig, load_dataset
from rltk.core.errors import UserError
from rltk.learner import collate
from rltk.models import LoraSettings, load_policy, tiny_policy, trainable_state
from rltk.sft import SFTJobConfig, completion_nll, encode_examples, length_batches, train_sft


def _cfg(tmp_path, **sft) -> SFTJobConfig:
    return from_dict(SFTJobConfig, {
        "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 8, "alpha": 16}},
        "data": {"source": "arithmetic", "limit": 32, "system_prompt": "Solve."},
        "sft": {"steps": 8, "batch_size": 8, "lr": 0.01, "warmup_steps": 0, "schedule": "constant", **sft},
        "log": {"live": False},
        "run_dir": str(tmp_path / "sft"),
    })


def test_sft_lowers_the_loss_and_writes_a_loadable_adapter(tmp_path):
    cfg = _cfg(tmp_path)
    pol = tiny_policy(lora=LoraSettings(r=8, alpha=16))
    ds = load_dataset(cfg.data)
    examples = encode_examples(ds, pol.tokenizer, pol.tokenizer.eos_token_id, 1024)

    def mean_nll(policy) -> float:  # completion-token NLL over the whole training set, as the learner computes it
        mb = collate([e.prompt_ids for e in examples], [e.completion_ids for e in examples], policy.tokenizer.pad_token_id,
                     policy.device)
        with torch.no_grad(), policy.autocast():
            return float(completion_nll(policy.model, mb, int(mb.mask.sum())))

    before = mean_nll(pol)
    result = train_sft(cfg, policy=pol)
    after = mean_nll(result.policy)
    assert after < before - 0.2, (before, after)  # measured: 4.56 -> ~4.1 on the tiny model
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 9)) and all(r["loss"] > 0 for r in lines)
    # the work done: each micro-batch's shared system prompt and template head run once, not once per row
    assert all(r["completion_tokens"] < r["tokens_run"] < r["tokens"] for r in lines), lines[0]
    # a standard peft folder: PeftModel.from_pretrained loads it, with the trained tensors
    from peft import PeftModel

    loaded = PeftModel.from_pretrained(tiny_policy().model, str(result.adapter_dir))
    a, b = trainable_state(result.policy.model), trainable_state(loaded)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = load_policy("tiny-random", quant="none", adapter=str(result.adapter_dir))  # what grpo's init_adapter does
    assert abs(mean_nll(again) - after) < 1e-5


def test_loss_is_on_completion_tokens_only():
    pol = tiny_policy(lora=LoraSettings(r=4))
    tok = pol.tokenizer
    prompt, completion = [1, 40, 41, 42], [50, 51, tok.eos_token_id]
    mb = collate([prompt], [completion], tok.pad_token_id, pol.device)
    assert mb.targets.tolist() == [completion] and mb.mask.tolist() == [[1.0, 1.0, 1.0]]
    # the NLL equals -sum log p(completion token | everything before) / 3, computed by hand from the logits
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logp = pol.model(input_ids=ids).logits.log_softmax(-1)[0]
        want = -sum(float(logp[len(prompt) - 1 + j, t]) for j, t in enumerate(completion)) / 3
        got = float(completion_nll(pol.model, mb, 3))
    assert got == pytest.approx(want, abs=1e-5)


def test_examples_end_with_eos_and_follow_the_chat_template():
    pol = tiny_policy()
    ds = load_dataset(DataConfig(source="arithmetic", limit=2, system_prompt="S", ops="+-"))  # the tiny tokenizer is ASCII
    [ex, _] = encode_examples(ds, pol.tokenizer, pol.tokenizer.eos_token_id, 1024)
    text = pol.tokenizer.decode(ex.prompt_ids)
    assert text.startswith("<|im_start|>system\nS<|im_end|>") and text.endswith("<|im_start|>assistant\n")
    assert ex.completion_ids[-1] == pol.tokenizer.eos_token_id
    assert pol.tokenizer.decode(ex.completion_ids[:-1]) == ds.rows[0]["solution"]


def test_too_long_rows_and_empty_completions_are_named(tmp_path):
    pol = tiny_policy()
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"question": "1+1", "solution": "2"}\n{"question": "2+2", "solution": "  "}\n')
    ds = load_dataset(DataConfig(source=str(path)))
    with pytest.raises(UserError, match=r"pairs\.jsonl:2: empty completion"):
        encode_examples(ds, pol.tokenizer, 2, 1024)
    with pytest.raises(UserError, match=r"pairs\.jsonl:1: \d+ tokens, more than sft\.max_length=10"):
        encode_examples(ds, pol.tokenizer, 2, 10)


def test_length_batches_cover_every_row_once_and_group_by_length():
    lengths = [random.Random(i).randint(5, 200) for i in range(64)]
    batches = length_batches(lengths, 8, window=8, rng=random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(64))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    shuffled = [list(range(k, k + 8)) for k in range(0, 64, 8)]
    naive = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in shuffled) / 8
    assert spread < naive / 3  # little padding within a batch


@pytest.mark.parametrize("prompts", [[[1, 40, 41, 42, 7], [1, 40, 41, 9], [1, 40, 41, 42, 7, 8, 9]],
                                     [[1, 40, 41], [1, 40, 41], [1, 40, 41]],
                                     [[3, 40], [1, 40, 41], [2, 9, 9, 9]]],
                         ids=["shared-head", "identical-prompts", "no-common-prefix"])
def test_prefix_shared_sft_loss_equals_padded_rows_in_value_and_gradient(prompts, monkeypatch):
    """SFT's micro-batches run their common prompt prefix once and their rows as a batch on its cache (the LM head
    only where a completion token is predicted): same NLL and LoRA gradients as left-padded separate rows."""
    import contextlib

    from rltk.logprobs import prefix_rows
    from rltk.policy.base import Policy

    monkeypatch.setattr(Policy, "autocast", lambda self: contextlib.nullcontext())  # fp32: compare to rounding
    pol = tiny_policy(lora=LoraSettings(r=4))
    random_lora_b(pol.model, 0.1)  # so the adapter matters
    eos = pol.tokenizer.eos_token_id
    completions = [[50, 51, eos], [52, eos], [53, 54, 55, 56, eos]]
    total = sum(map(len, completions))
    rows = prefix_rows(prompts, completions)
    assert all(len(c) >= 1 for c in rows.contexts) and rows.n_targets == total
    padded = collate(prompts, completions, pol.tokenizer.pad_token_id, pol.device)
    params = [p for p in pol.model.parameters() if p.requires_grad]
    a, b = completion_nll(pol.model, rows, total), completion_nll(pol.model, padded, total)
    assert float(a.detach()) == pytest.approx(float(b.detach()), abs=1e-5)
    ga, gb = torch.autograd.grad(a, params), torch.autograd.grad(b, params)
    for x, y in zip(ga, gb):  # LoRA learns through the shared prefix's positions too
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
    assert any(float(x.abs().max()) > 0 for x in ga)
    with pytest.raises(ValueError):
        prefix_rows([[1, 2], []], [[3], [4]])
