"""The GRPO loop on the tiny random model: it learns, resumes exactly, refuses bad rows, survives NaN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rewards import RewardScores
from rltk.checkpoint import list_checkpoints
from rltk.core.config import from_dict
from rltk.core.errors import UserError
from rltk.core.seeds import step_seed
from rltk.grpo import GRPOJobConfig, build_train_batch, ScoredGroup, train
from rltk.rollouts import LocalRollouts
from rltk.metrics import read_jsonl
from rltk.models import LoraSettings, tiny_policy, trainable_state
from rltk.rollouts import PromptRequest, RolloutGroup, RolloutWorker, SamplingConfig

REWARD_SRC = '''
def likes_a(completions, **columns):
    """Share of the completion's characters that are the letter a."""
    return [c.count("a") / max(len(c), 1) for c in completions]
'''


@pytest.fixture
def likes_a(tmp_path) -> str:
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARD_SRC)
    return f"{path}:likes_a"


def _cfg(tmp_path, reward: str, **over) -> GRPOJobConfig:
    base = {
        "model": {"spec": "tiny-random", "quant": "none", "lora": {"r": 8, "alpha": 16}},
        "data": {"source": "arithmetic", "limit": 40},
        "sampling": {"group_size": 8, "max_new_tokens": 8},
        "grpo": {"steps": 4, "prompts_per_step": 4, "lr": 0.02, "micro_batch_size": 16},
        "rewards": [{"name": reward}],
        "checkpoint": {"every": 2, "keep": 5},
        "log": {"live": False, "samples_every": 1},
        "run_dir": str(tmp_path / "run"),
    }
    for key, value in over.items():
        node = base
        *path, last = key.split(".")
        for k in path:
            node = node.setdefault(k, {})
        node[last] = value
    return from_dict(GRPOJobConfig, base)


def _count_a(policy, temperature: float, n_prompts=16, seed=123) -> int:
    """Letters 'a' in 16 prompts x 8 completions x 8 tokens sampled with a fixed seed."""
    worker = RolloutWorker(None, SamplingConfig(group_size=8, max_new_tokens=8, temperature=temperature), policy=policy)
    reqs = [PromptRequest(i, {}, [{"role": "user", "content": f"What is {i} + {i}?"}]) for i in range(n_prompts)]
    return sum(t.count("a") for g in worker.generate(reqs, seed=seed) for t in g.texts)


def test_grpo_raises_the_reward_it_optimises(tmp_path, likes_a):
    """A real learning test: a reward that prefers the letter 'a' makes the policy write more of them.
    (Temperature 0.3: the random model's logits are too flat for one letter to dominate at T = 1.)"""
    cfg = _cfg(tmp_path, likes_a, **{"grpo.steps": 6, "grpo.lr": 0.01, "checkpoint.every": 0, "sampling.temperature": 0.3})
    before = _count_a(tiny_policy(lora=LoraSettings(r=8, alpha=16)), 0.3)
    result = train(cfg)
    after = _count_a(result.policy, 0.3)
    assert after >= 5 * before + 20, (before, after)  # measured: 11 -> 337 of 1024 characters (seeds 1-3: 370-396)
    hist = result.history
    assert hist[-1]["reward_mean"] > 4 * hist[0]["reward_mean"]  # and the training reward itself rose
    assert len(hist) == 6 and all(h["optimizer_steps"] == (1 if h["zero_variance_share"] < 1 else 0) for h in hist)
    assert sum(h["optimizer_steps"] for h in hist) >= 4  # a step whose every group has one reward learns nothing
    assert (result.adapter_dir / "adapter_config.json").is_file()
    # the logs: one line per step with the documented fields, samples with their rewards
    lines = read_jsonl(result.run_dir / "metrics.jsonl")
    assert [r["step"] for r in lines] == list(range(1, 7))
    for key in ("reward_mean", f"reward/{likes_a}", "kl", "clip_fraction", "completion_len", "zero_variance_share",
                "truncation_rate", "tokens_per_s", "seconds/generate", "seconds/reward", "seconds/learn",
                f"reward_failures/{likes_a}"):
        assert key in lines[0], key
    # every group is kept here (no dynamic sampling): the tokens sampled are the tokens trained on
    assert all(r["sampled_tokens"] == r["generated_tokens"] > 0 for r in lines)
    assert lines[0]["tokens_per_s"] == pytest.approx(lines[0]["sampled_tokens"] / lines[0]["seconds/generate"])
    assert lines[0]["kl"] is None  # beta = 0: the KL is not measured, so it is not logged as 0
    samples = read_jsonl(result.run_dir / "samples.jsonl")
    assert samples and {"completion", "reward", "advantage", "components"} <= set(samples[0])


HAS_A_SRC = '''
def has_a(completions, **columns):
    """1.0 when the completion holds the letter a: many groups tie, so dynamic sampling draws more."""
    return [float("a" in c) for c in completions]
'''


@pytest.mark.parametrize("dynamic", [False, True], ids=["fixed-draws", "dynamic-sampling"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, likes_a, monkeypatch, dynamic):
    """Killed in step 4 and resumed from the step-2 checkpoint: the same weights, prompts and rewards as one
    uninterrupted run (with dynamic sampling too: its first draw depends on the share earlier steps kept)."""
    if dynamic:
        (tmp_path / "has_a.py").write_text(HAS_A_SRC)
        likes_a = f"{tmp_path / 'has_a.py'}:has_a"
    extra = {"grpo.dynamic_sampling": dynamic}
    full = train(_cfg(tmp_path / "a", likes_a, **extra))
    want = trainable_state(full.policy.model)

    # the same run killed in step 4 (after the step-2 checkpoint and step 3's unsaved update)
    cfg = _cfg(tmp_path / "b", likes_a, **extra)
    real_collect = LocalRollouts.collect

    def dying_collect(self, handle):
        log = Path(cfg.run_dir) / "metrics.jsonl"
        if log.is_file() and len(read_jsonl(log)) == 3:  # step 3 logged: this is step 4's (first) draw
            raise KeyboardInterrupt("killed")
        return real_collect(self, handle)

    monkeypatch.setattr(LocalRollouts, "collect", dying_collect)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(LocalRollouts, "collect", real_collect)
    run_dir = Path(cfg.run_dir)
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-000002"]
    assert len(read_jsonl(run_dir / "metrics.jsonl")) == 3  # step 3 was logged, but never checkpointed
    (run_dir / "checkpoints" / ".tmp-step-000004-x").mkdir()  # a save interrupted by the kill: ignored

    resumed = train(cfg, resume=run_dir)
    got = trainable_state(resumed.policy.model)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-7)
    a, b = read_jsonl(full.run_dir / "metrics.jsonl"), read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3, 4]  # the redone step 3 is logged once
    assert [r["cursor"] for r in a] == [r["cursor"] for r in b]  # no prompt repeated or skipped
    assert [r["reward_mean"] for r in a] == [r["reward_mean"] for r in b]
    if dynamic:  # the case is real: some step drew more than its 4 prompts
        assert max(r["prompts_drawn"] for r in a) > 4, [r["prompts_drawn"] for r in a]


def test_resume_needs_a_checkpoint(tmp_path, likes_a):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no complete checkpoint"):
        train(_cfg(tmp_path, likes_a), resume=tmp_path / "empty")


def test_a_row_without_the_rewards_column_fails_before_training(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n{"question": "2+2?"}\n')
    cfg = _cfg(tmp_path, "math_answer", **{"data.source": str(data)})
    with pytest.raises(UserError, match=r"rows\.jsonl:2: reward 'math_answer' needs column 'answer'"):
        train(cfg)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_row_without_the_prompt_field_is_named(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2"}\n\n{"query": "2+2?", "answer": "4"}\n')
    with pytest.raises(UserError, match=r"rows\.jsonl:3: row lacks field 'question'"):
        train(_cfg(tmp_path, "math_answer", **{"data.source": str(data)}))


class _NaNRewards:
    """A scorer (RewardSet's interface) whose total is NaN at step 2."""

    labels = ["nan_prone"]

    def __init__(self):
        self.calls = 0

    def required_columns(self):
        return set()

    def check_columns(self, columns, where):
        return None

    def score(self, completions, **columns):
        self.calls += 1
        vals = [float(c.count("a")) for c in completions]
        if self.calls == 2:
            vals[0] = float("nan")
        return RewardScores(vals, {"nan_prone": list(vals)}, {"nan_prone": 0}, {"nan_prone": 0.0})


def test_nonfinite_rewards_skip_the_step_and_never_reach_the_adapter(tmp_path, likes_a, monkeypatch):
    cfg = _cfg(tmp_path, likes_a, **{"grpo.steps": 3, "checkpoint.every": 0})
    states = []
    real_update = __import__("rltk.learner", fromlist=["Learner"]).Learner.grpo_update

    def recording_update(self, batch, loss_cfg, step):
        states.append(trainable_state(self.model))
        return real_update(self, batch, loss_cfg, step)

    monkeypatch.setattr("rltk.learner.Learner.grpo_update", recording_update)
    result = train(cfg, reward_set=_NaNRewards())
    hist = result.history
    assert hist[1]["skipped"] == "non-finite reward" and hist[1]["optimizer_steps"] == 0
    assert hist[0]["skipped"] is None and hist[2]["skipped"] is None
    assert len(states) == 2  # the learner never saw step 2's batch
    final = trainable_state(result.policy.model)
    assert all(torch.isfinite(v).all() for v in final.values())


def test_reward_failures_are_counted_by_name(tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text("def flaky(completions, **c):\n    return [1 / 0 if 'a' in x else 0.5 for x in completions]\n")
    cfg = _cfg(tmp_path, f"{path}:flaky", **{"grpo.steps": 2, "checkpoint.every": 0})
    hist = train(cfg).history
    assert hist[-1][f"reward_failures/{path}:flaky"] > 0


def test_dynamic_sampling_trains_only_groups_with_a_reward_spread(tmp_path):
    # reward 1 when the completion contains 'a' (rare for the random model): most groups are all-zero
    path = tmp_path / "has_a.py"
    path.write_text("def has_a(completions, **c):\n    return [1.0 if 'a' in x else 0.0 for x in completions]\n")
    cfg = _cfg(tmp_path, f"{path}:has_a", **{"grpo.steps": 2, "grpo.dynamic_sampling": True, "grpo.max_draw_factor": 3.0,
                                               "checkpoint.every": 0, "log.samples_groups": 100,
                                               "sampling.group_size": 4})
    hist = train(cfg).history
    for h in hist:
        assert h["prompts_drawn"] > h["groups"] > 0  # drew more prompts than it kept
        assert h["prompts_drawn"] <= 12 and h["groups"] <= 4  # the draw budget; the batch never grows past 4 groups
        assert 0 < h["zero_variance_share"] <= 1 - h["groups"] / h["prompts_drawn"] + 1e-9
        # generation's throughput counts the dropped groups' tokens too: they took generation's time
        assert h["sampled_tokens"] > h["generated_tokens"] > 0
        assert h["tokens_per_s"] == pytest.approx(h["sampled_tokens"] / h["seconds/generate"])
    by_group: dict[tuple[int, int], list[float]] = {}
    for s in read_jsonl(Path(cfg.run_dir) / "samples.jsonl"):
        by_group.setdefault((s["step"], s["index"]), []).append(s["reward"])
    assert by_group and all(max(v) > min(v) for v in by_group.values())  # every trained group had a spread


def test_dynamic_sampling_sizes_the_first_draw_by_the_previous_steps(tmp_path, monkeypatch):
    """Step 1 draws prompts_per_step; later steps draw prompts_per_step / (share kept so far) at once (one batch),
    within the draw budget."""
    import rltk.grpo.loop as loop

    path = tmp_path / "has_a.py"
    path.write_text("def has_a(completions, **c):\n    return [1.0 if 'a' in x else 0.0 for x in completions]\n")
    draws: list[tuple[int, int, int]] = []  # (step, draw, prompts)
    real = loop._submit
    monkeypatch.setattr(loop, "_submit", lambda run, step, draw, k: draws.append((step, draw, k)) or real(run, step, draw, k))
    cfg = _cfg(tmp_path, f"{path}:has_a", **{"grpo.steps": 3, "grpo.dynamic_sampling": True, "grpo.max_draw_factor": 3.0,
                                               "checkpoint.every": 0, "sampling.group_size": 4})
    hist = train(cfg).history
    assert len(hist) == 3 and draws[0] == (0, 0, 4)
    later_firsts = [k for st, d, k in draws if st > 0 and d == 0]
    assert len(later_firsts) == 2 and all(4 <= k <= 12 for k in later_firsts)  # never past the draw budget
    assert any(k > 4 for k in later_firsts)  # the rare reward keeps few groups: later steps draw more at once
    assert loop.first_draw(4, 0.5) == 8 and loop.first_draw(4, None) == 4


def test_pipelined_rollouts_are_one_step_stale(tmp_path, likes_a):
    cfg = _cfg(tmp_path, likes_a, **{"grpo.steps": 3, "distributed.pipeline": True, "checkpoint.every": 0})
    hist = train(cfg).history
    assert [h["stale_groups"] for h in hist] == [0, 4, 4]  # steps 2 and 3 learn on rollouts of the previous adapter
    assert [h["cursor"] for h in hist] == [8, 12, 12]  # step t+1's prompts are drawn during step t


def test_build_train_batch_masks_truncated_and_marks_stale():
    g = RolloutGroup(0, {}, [5, 6], [[7, 8], [9]], [[-0.1, -0.2], [-0.3]], ["ab", "c"], [True, False], policy_version=1)
    scored = [ScoredGroup(g, [1.0, 0.0], {})]
    adv = torch.tensor([[0.7, -0.7]])
    batch = build_train_batch(scored, adv, learner_version=1, mask_truncated=False, max_new_tokens=4)
    assert batch.completion_ids == [[7, 8], [9]] and batch.advantages == pytest.approx([0.7, -0.7])
    assert batch.behaviour_logprobs == [None, None]  # on-policy
    assert (batch.totals.sequences, batch.totals.tokens, batch.totals.max_tokens) == (2, 3, 4)
    masked = build_train_batch(scored, adv, learner_version=2, mask_truncated=True, max_new_tokens=4)
    assert masked.completion_ids == [[9]] and masked.behaviour_logprobs == [[-0.3]]  # stale: sampler log-probs
    assert (masked.totals.sequences, masked.totals.tokens) == (1, 1)


def test_step_seed_is_stable():
    assert step_seed(0, 3, 1) == step_seed(0, 3, 1) != step_seed(0, 3, 2) != step_seed(1, 3, 1)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(UserError, match=r"unknown key 'grpo\.betaa' \(did you mean 'grpo\.beta'\?\)"):
        from_dict(GRPOJobConfig, {"grpo": {"betaa": 0.1}})
    with pytest.raises(UserError, match=r"key 'grpo\.mu' must be an integer"):
        from_dict(GRPOJobConfig, {"grpo": {"mu": "two"}})
    with pytest.raises(UserError, match="loss_agg' must be one of"):
        from_dict(GRPOJobConfig, {"grpo": {"loss_agg": "tokens"}})


def _hist(n, **series):
    return [{"step": i + 1, **{k: v[i] for k, v in series.items()}} for i in range(n)]


def test_warning_format_rising_while_correctness_falls():
    from rltk.metrics import failure_warnings

    h = _hist(8, **{"reward/format": [0.2] * 4 + [0.6] * 4, "reward/correct": [0.5] * 4 + [0.3] * 4})
    warned: set[str] = set()
    [w] = failure_warnings(h, "reward/correct", "reward/format", warned=warned)
    assert "format reward rose 0.20 -> 0.60 while correctness fell 0.50 -> 0.30" in w
    assert failure_warnings(h, "reward/correct", "reward/format", warned=warned) == []  # said once
    steady = _hist(8, **{"reward/format": [0.2] * 4 + [0.6] * 4, "reward/correct": [0.5] * 8})
    assert failure_warnings(steady, "reward/correct", "reward/format") == []


def test_warning_length_collapse_and_limit():
    from rltk.metrics import failure_warnings

    [w] = failure_warnings(_hist(8, completion_len=[30] * 4 + [10] * 4))
    assert "completion length collapsing (30.0 -> 10.0 tokens)" in w
    [w] = failure_warnings(_hist(3, truncation_rate=[0.6, 0.7, 0.9]), max_new_tokens=48)
    assert "hit the length limit (48 tokens) for 3 steps" in w
    assert failure_warnings(_hist(3, truncation_rate=[0.6, 0.1, 0.9])) == []


def test_warning_no_learning_signal_is_logged_with_the_step(tmp_path):
    from rltk.metrics import MetricsLog

    log = MetricsLog(tmp_path)
    [w] = log.log({"step": 1, "zero_variance_share": 1.0, "prompts_drawn": 4, "groups": 4})
    assert "all 4 groups had equal rewards" in w
    assert read_jsonl(tmp_path / "metrics.jsonl")[0]["warnings"] == [w]
    assert log.log({"step": 2, "zero_variance_share": 0.5, "prompts_drawn": 4, "groups": 4}) == []


def test_rewards_see_the_row_columns_the_chat_prompt_and_token_ids(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(
        "def probe(completions, prompts, answer, completion_ids, **c):\n"
        "    ok = [isinstance(p, list) and p[-1]['role'] == 'user' and isinstance(a, str) and len(ids) >= 1\n"
        "          for p, a, ids in zip(prompts, answer, completion_ids)]\n"
        "    return [1.0 if x else 0.0 for x in ok]\n")
    cfg = _cfg(tmp_path, f"{path}:probe", **{"grpo.steps": 1, "checkpoint.every": 0})
    [h] = train(cfg).history
    assert h[f"reward/{path}:probe"] == 1.0 and h[f"reward_failures/{path}:probe"] == 0


def test_eval_uses_the_system_prompt_the_policy_is_trained_with():
    from evals import get_task

    from rltk.grpo import eval_task

    own = get_task("arithmetic").system
    trained = from_dict(GRPOJobConfig, {"data": {"source": "arithmetic", "system_prompt": "Be brief."}})
    assert eval_task(trained).system == "Be brief."
    assert eval_task(from_dict(GRPOJobConfig, {"data": {"system_prompt": "Be brief."}, "eval": {"system_prompt": "task"}})).system == own
    assert eval_task(from_dict(GRPOJobConfig, {"eval": {"system_prompt": "Say hi."}})).system == "Say hi."
    assert eval_task(from_dict(GRPOJobConfig, {})).system == own  # no training prompt: the task's own
