"""TRL's reward functions, unchanged, called the way TRL's GRPOTrainer calls them: conversational and standard
completions, ``trainer_state``, ``completion_ids``, async rewards, factories with ``params``, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewards import RewardCall, RewardSet, RewardSpec, get_reward
from rewards.calls import portable_columns
from rewards.core import is_factory
from rltk.cli import main
from rltk.core.errors import UserError

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

PROMPT = [{"role": "user", "content": "What is 2+2?"}]
TEXTS = ["<think>\n2 and 2\n</think>\nThe answer is $\\boxed{4}$.", "I think it is 5.", "<think>hmm</think> \\boxed{5}"]
IDS = [[1] * 44, [3, 3, 3, 3, 3], [1, 2, 3]]  # 44 tokens: soft-punished by max_completion_len 48, cache 8
OVERLONG = {"max_completion_len": 48, "soft_punish_cache": 8}

PROBE = '''
import asyncio


def probe(completions, prompts, completion_ids, trainer_state, solution, **kwargs):
    """Written for TRL: 1.0 when it got what GRPOTrainer passes; raises naming what is off."""
    got = {"completion": type(completions[0]).__name__, "state": [trainer_state.global_step, trainer_state.max_steps,
           trainer_state.epoch], "ids": type(completion_ids[0]).__name__, "prompt": type(prompts[0]).__name__,
           "extra": sorted(kwargs)}
    want = {"completion": "list", "state": [3, 10, 0.5], "ids": "list", "prompt": "list", "extra": []}
    if got != want:
        raise AssertionError(f"got {got}")
    return [1.0 for _ in completions]


async def judge(completions, **kwargs):
    await asyncio.sleep(0)
    return [float(len(c[0]["content"]) > 10) for c in completions]


def returns_coroutine(completions, **kwargs):
    return judge(completions)


def ids_first(completion_ids, **kwargs):
    return [float(len(ids)) for ids in completion_ids]
'''


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def state():
    return transformers.TrainerState(epoch=0.5, global_step=3, max_steps=10)


def columns(**extra):
    return {"prompts": [PROMPT] * 3, "solution": ["4", "4", "4"], "completion_ids": IDS, "trainer_state": state(), **extra}


@pytest.fixture
def probe(tmp_path) -> str:
    path = tmp_path / "trl_probe.py"
    path.write_text(PROBE)
    return str(path)


def trl_set() -> RewardSet:
    specs = [RewardSpec("trl.rewards:think_format_reward", label="think"),
             RewardSpec("trl.rewards:get_soft_overlong_punishment", label="overlong", params=OVERLONG),
             RewardSpec("trl.rewards:get_repetition_penalty_reward", label="repetition",
                        params={"ngram_size": 2, "max_penalty": -1.0})]
    return RewardSet(specs)


def test_trl_rewards_unchanged_on_conversational_completions():
    s = trl_set().score([chat(t) for t in TEXTS], **columns())
    assert s.components["think"] == [1.0, 0.0, 1.0]
    assert s.components["overlong"] == [-0.5, 0.0, 0.0]
    assert s.components["repetition"] == pytest.approx([-42 / 43, -0.75, 0.0])
    assert s.failures == {"think": 0, "overlong": 0, "repetition": 0} and not any(s.failed)


def test_trl_rewards_on_standard_completions_fail_as_in_trl():
    """TRL's think_format_reward reads completion[0]["content"]: given text (a standard dataset) it raises in
    TRL too. Here that is a counted failure with a hint, and the token-id rewards still score."""
    s = trl_set().score(TEXTS, **columns())
    assert s.components["overlong"] == [-0.5, 0.0, 0.0] and s.failures["overlong"] == 0
    assert s.failures["think"] == 3 and all(s.failed)
    assert "string indices must be integers" in s.errors["think"][0] and "conversational format" in s.errors["think"][0]


def test_accuracy_reward_unchanged():
    pytest.importorskip("math_verify")
    rs = RewardSet([RewardSpec("trl.rewards:accuracy_reward", label="acc")])
    s = rs.score([chat(t) for t in TEXTS], **columns())
    assert s.components["acc"] == [1.0, 0.0, 0.0] and s.failures["acc"] == 0
    s = rs.score([chat(t) for t in TEXTS], **columns(solution=["4", "not latex at all", "5"]))
    assert s.components["acc"] == [1.0, None, 1.0]  # an unparseable gold is None: skipped, not a failure
    assert s.failures["acc"] == 0
    with pytest.raises(UserError, match="column 'solution'"):
        rs.check_columns(["prompts", "completion_ids"], "rows.jsonl")


def test_reward_gets_what_grpo_trainer_passes(probe):
    """Sandboxed: trainer_state arrives with its attributes (as a light copy, so no worker imports torch)."""
    rs = RewardSet([RewardSpec(f"{probe}:probe", label="probe")])
    s = rs.score([chat(t) for t in TEXTS], **columns())
    assert s.components["probe"] == [1.0, 1.0, 1.0], s.errors
    view = portable_columns(columns())["trainer_state"]
    assert (view.global_step, view.max_steps, view.epoch) == (3, 10, 0.5)


def test_in_process_reward_gets_the_trainer_state_itself():
    seen: list[dict] = []

    def record(prompts, completions, completion_ids, **kwargs):  # TRL's keyword call: prompts first is fine
        seen.append({"prompts": prompts, "completions": completions, "ids": completion_ids, **kwargs})
        return [0.0] * len(completions)

    RewardSet([RewardSpec(record, label="r")]).score([chat(t) for t in TEXTS], **columns())
    [got] = seen
    assert isinstance(got["trainer_state"], transformers.TrainerState) and got["trainer_state"].global_step == 3
    assert got["completions"][0] == chat(TEXTS[0]) and got["ids"] == IDS and got["solution"] == ["4"] * 3
    assert got["prompts"] == [PROMPT] * 3


@pytest.mark.parametrize("fn", ["judge", "returns_coroutine"])
def test_async_rewards_are_awaited(probe, fn):
    want = [1.0, 1.0, 1.0]
    assert get_reward(f"{probe}:{fn}")([chat(t) for t in TEXTS]) == want  # in-process
    s = RewardSet([RewardSpec(f"{probe}:{fn}", label="a")]).score([chat(t) for t in TEXTS], **columns())
    assert s.components["a"] == want and s.failures["a"] == 0  # in a sandbox worker


def test_async_reward_in_process_inside_a_running_loop():
    import asyncio

    async def judge(completions, **kwargs):
        return [1.0 for _ in completions]

    async def main_loop():  # e.g. a notebook: score() is called while an event loop runs
        return RewardSet([RewardSpec(judge, label="j")]).score(["a", "b"]).components["j"]

    assert asyncio.run(main_loop()) == [1.0, 1.0]


def test_completions_go_by_keyword_like_trl(probe):
    fn = get_reward(f"{probe}:ids_first")  # first parameter is completion_ids, as in TRL's _RepetitionPenalty
    assert fn(["a", "b"], completion_ids=[[1], [1, 2]]) == [1.0, 2.0]
    assert get_reward(lambda comps, **kw: [len(c) for c in comps])(["ab"], prompts=["p"]) == [2]  # own name: positional


def test_factories_take_params():
    assert is_factory(trl.rewards.get_soft_overlong_punishment) and is_factory(trl.rewards.get_repetition_penalty_reward)
    assert not is_factory(trl.rewards.think_format_reward) and not is_factory(trl.rewards.accuracy_reward)
    fn = get_reward("trl.rewards:get_soft_overlong_punishment", **OVERLONG)
    assert isinstance(fn, RewardCall) and fn(TEXTS, completion_ids=IDS) == [-0.5, 0.0, 0.0]
    assert get_reward("trl.rewards:get_repetition_penalty_reward")(["x"], completion_ids=[[5, 5, 5, 5]]) == [-0.5]  # defaults: trigrams
    with pytest.raises(UserError, match=r"is a factory .* failed: TypeError"):
        RewardSet([RewardSpec("trl.rewards:get_soft_overlong_punishment", params={"max_len": 4})])
    with pytest.raises(UserError, match="max_penalty 1.0 should not be positive"):
        get_reward("trl.rewards:get_repetition_penalty_reward", max_penalty=1.0)


def test_factory_made_by_a_callable_object():
    rs = RewardSet([RewardSpec(trl.rewards.get_soft_overlong_punishment, label="o", params=OVERLONG)])
    assert rs.score(TEXTS, completion_ids=IDS).components["o"] == [-0.5, 0.0, 0.0]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reward_score_cli_with_trl_rewards(tmp_path):
    pytest.importorskip("math_verify")
    rows = [{"prompt": PROMPT, "completion": chat(t), "solution": "4", "completion_ids": ids} for t, ids in zip(TEXTS, IDS)]
    inp, out = write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "scored.jsonl"
    overlong = "trl.rewards:get_soft_overlong_punishment"
    code = main(["reward", "score", "--reward", "trl.rewards:accuracy_reward", "--reward", "trl.rewards:think_format_reward",
                 "--reward", overlong, "--param", f"{overlong}.max_completion_len=48", "--param", f"{overlong}.soft_punish_cache=8",
                 "--input", str(inp), "--output", str(out)])
    assert code == 0
    scored = [json.loads(line)["rewards"] for line in out.read_text().splitlines()]
    assert [r["trl.rewards:accuracy_reward"] for r in scored] == [1.0, 0.0, 0.0]
    assert [r["trl.rewards:think_format_reward"] for r in scored] == [1.0, 0.0, 1.0]
    assert [r[overlong] for r in scored] == [-0.5, 0.0, 0.0]
