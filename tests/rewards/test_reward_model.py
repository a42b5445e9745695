"""The ``reward_model`` built-in on a tiny sequence classifier built here: deterministic, batch-size
independent, in-process, clear errors, and usable as the reward of a GRPO run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rewards import RewardSet, RewardSpec, get_reward
from rewards.reward_model import load_reward_model, reward_input
from rltk.core.config import from_dict
from rltk.core.errors import UserError
from rltk.grpo import GRPOJobConfig, train
from rltk.metrics import read_jsonl
from rltk.policy import tiny_tokenizer

PROMPTS = [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(5)]
TEXTS = ["4", "the answer is 8", "", "12, because six and six make twelve", "zzzz"]


def _config(tok, labels: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512, num_labels=labels,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)


def save_classifier(folder: Path, labels: int = 1, seed: int = 0) -> str:
    from transformers import LlamaForSequenceClassification

    tok = tiny_tokenizer()
    torch.manual_seed(seed)
    LlamaForSequenceClassification(_config(tok, labels)).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def rm_path(tmp_path_factory) -> str:
    return save_classifier(tmp_path_factory.mktemp("rm"))


def test_scores_are_deterministic_and_independent_of_the_batch(rm_path):
    big = get_reward("reward_model", model=rm_path, batch_size=4, device="cpu")
    one = get_reward("reward_model", model=rm_path, batch_size=1, device="cpu")
    a = big(TEXTS, prompts=PROMPTS)
    assert len(a) == 5 and all(isinstance(x, float) for x in a)
    assert a == big(TEXTS, prompts=PROMPTS)  # the same inputs, the same scores
    assert one(TEXTS, prompts=PROMPTS) == pytest.approx(a, abs=1e-5)  # padding does not change a score
    assert len(set(a)) > 1  # the completions are told apart
    chat = [[{"role": "assistant", "content": t}] for t in TEXTS]  # conversational completions read the same
    assert big(chat, prompts=PROMPTS) == pytest.approx(a, abs=1e-6)
    squashed = get_reward("reward_model", model=rm_path, normalize="sigmoid", device="cpu")(TEXTS, prompts=PROMPTS)
    assert squashed == pytest.approx([float(torch.tensor(x).sigmoid()) for x in a], abs=1e-6)


def test_loaded_once_and_run_in_process(rm_path):
    assert load_reward_model(rm_path, "cpu") is load_reward_model(rm_path, "cpu")
    rs = RewardSet([{"name": "reward_model", "params": {"model": rm_path, "device": "cpu"}, "label": "rm"}])
    assert rs._components[0].target is None  # a model: in-process, not in a sandbox worker
    s = rs.score(TEXTS, prompts=PROMPTS)
    assert s.failures == {"rm": 0} and s.total == pytest.approx(s.components["rm"])


def test_input_is_the_chat_template_or_the_text(rm_path):
    tok = load_reward_model(rm_path, "cpu").tokenizer
    want = tok.apply_chat_template(PROMPTS[0] + [{"role": "assistant", "content": "4"}], tokenize=False)
    assert reward_input(tok, PROMPTS[0], "4") == want
    assert reward_input(tok, "What is 0 + 0?", "4") == want  # a text prompt is the user turn
    plain = tiny_tokenizer()
    plain.chat_template = None
    assert reward_input(plain, PROMPTS[0], "4") == "What is 0 + 0?\n4"
    assert reward_input(plain, "Q: ", "4") == "Q: 4"


def test_labels_pick_the_logit(tmp_path):
    path = save_classifier(tmp_path / "two", labels=2)
    first = get_reward("reward_model", model=path, device="cpu")(TEXTS[:2])
    second = get_reward("reward_model", model=path, device="cpu", label=1)(TEXTS[:2])
    named = get_reward("reward_model", model=path, device="cpu", label="LABEL_1")(TEXTS[:2])
    probs = get_reward("reward_model", model=path, device="cpu", label=1, normalize="softmax")(TEXTS[:2])
    assert first != second and named == second and all(0 < p < 1 for p in probs)
    with pytest.raises(UserError, match="label 2 is out of range"):
        get_reward("reward_model", model=path, device="cpu", label=2)
    with pytest.raises(UserError, match="has no label 'good'"):
        get_reward("reward_model", model=path, device="cpu", label="good")


def test_bad_models_are_one_line_user_errors(tmp_path):
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(UserError) as e:
        RewardSet([{"name": "reward_model", "params": {"model": missing}}])
    assert f"reward_model: cannot load '{missing}'" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="needs params.model"):
        RewardSet([{"name": "reward_model"}])
    from transformers import LlamaForCausalLM

    tok = tiny_tokenizer()
    LlamaForCausalLM(_config(tok, 1)).save_pretrained(str(tmp_path / "lm"))  # a language model, not a classifier
    tok.save_pretrained(str(tmp_path / "lm"))
    with pytest.raises(UserError, match="has no trained classification head"):
        get_reward("reward_model", model=str(tmp_path / "lm"), device="cpu")


def test_a_grpo_step_trains_on_the_reward_model(tmp_path, rm_path):
    cfg = from_dict(GRPOJobConfig, {
        "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 8, "alpha": 16}},
        "data": {"source": "arithmetic", "limit": 8},
        "sampling": {"group_size": 4, "max_new_tokens": 6},
        "grpo": {"steps": 2, "prompts_per_step": 2, "lr": 0.02, "micro_batch_size": 8},
        "rewards": [{"name": "reward_model", "label": "rm", "params": {"model": rm_path, "device": "cpu"}}],
        "checkpoint": {"every": 0}, "log": {"live": False},
        "run_dir": str(tmp_path / "run"),
    })
    result = train(cfg)
    lines = read_jsonl(result.run_dir / "metrics.jsonl")
    assert [r["step"] for r in lines] == [1, 2]
    assert all(r["reward_failures/rm"] == 0 and isinstance(r["reward/rm"], float) for r in lines)
