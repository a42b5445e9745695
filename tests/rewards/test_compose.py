"""The reward API and RewardSet: TRL functions unchanged, @reward, gating, failures by name."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from rewards import REWARDS, RewardSet, RewardSpec, get_reward, reward
from rltk.core.errors import UserError

USER = str(Path(__file__).with_name("user_rewards.py"))


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_builtins_are_registered():
    assert {"math_answer", "format_answer", "think_format", "regex", "overlong", "repetition", "legal_terms"} <= set(REWARDS.names())


def test_trl_chat_format_reward_runs_unchanged():
    comps = [chat("<think>2+2</think><answer>4</answer>"), chat("4"), chat("<think>x</think><answer>5</answer> extra")]
    prompts = [[{"role": "user", "content": "2+2?"}]] * 3
    fn = get_reward(f"{USER}:think_answer_format")
    assert fn(comps, prompts=prompts) == [1.0, 0.0, 0.0]
    # in a RewardSet it runs in sandbox workers, still seeing chat-format completions
    rs = RewardSet([RewardSpec(f"{USER}:think_answer_format", label="fmt"), RewardSpec("math_answer", gate="fmt")])
    s = rs.score(comps, prompts=prompts, answer=["4", "4", "5"])
    assert s.components["fmt"] == [1.0, 0.0, 0.0]
    # math_answer reads the chat completions too (last number / answer text)
    assert s.components["math_answer"] == [1.0, 1.0, 1.0]
    assert s.total == [2.0, 0.0, 0.0]  # correctness counts only where the format gate passed
    assert s.failures == {"fmt": 0, "math_answer": 0}


def test_trl_column_reward_and_required_columns():
    spec = RewardSpec(f"{USER}:boxed_matches_truth", label="acc")
    rs = RewardSet([spec])
    assert rs.required_columns() == {"ground_truth"}
    s = rs.score([r"so \boxed{7}", r"\boxed{8}"], prompts=["a", "b"], ground_truth=["7", "7"])
    assert s.components["acc"] == [1.0, 0.0] and s.total == [1.0, 0.0]
    with pytest.raises(UserError, match=r"rows.jsonl: reward 'acc' needs column 'ground_truth'"):
        rs.check_columns(["prompt", "completion"], where="rows.jsonl")


def test_per_sample_decorator_and_none_not_applicable():
    rs = RewardSet([RewardSpec(f"{USER}:mentions_keyword", label="kw"), RewardSpec("repetition", weight=0.5)])
    assert rs.required_columns() == {"keyword"}
    s = rs.score(["A contract is binding", "hello hello hello hello hello", "x"], keyword=["binding", "bye", None])
    assert s.components["kw"] == [1.0, 0.0, None]
    assert s.components["repetition"] == [0.0, pytest.approx(-2 / 3), 0.0]
    assert s.total[0] == 1.0 and s.total[1] == pytest.approx(-1 / 3) and s.total[2] == 0.0
    assert s.failures == {"kw": 0, "repetition": 0}


def test_decorated_function_in_process():
    @reward
    def longer_than(completion, min_len, **row):
        return float(len(completion) > min_len)

    assert longer_than.required_columns() == {"min_len"}
    assert longer_than(["abc", "a"], min_len=[2, 2]) == [1.0, 0.0]


def test_raising_reward_isolated_per_sample(caplog):
    rs = RewardSet([RewardSpec(f"{USER}:flaky", label="flaky"), RewardSpec("format_answer", label="fmt")])
    with caplog.at_level(logging.WARNING, logger="rewards"):
        s = rs.score(["ok #### 1", "boom #### 2", "fine"], answer=[None] * 3)
    assert s.components["flaky"] == [1.0, None, 1.0]
    assert s.failures["flaky"] == 1 and s.failures["fmt"] == 0
    assert "RuntimeError: cannot score this one" in s.errors["flaky"][0]
    assert "reward 'flaky' failed on 1 of 3 samples" in caplog.text
    assert s.total == [2.0, 1.0, 1.0]  # the failed component is excluded, not counted as 0


def test_fallback_score_for_failures():
    rs = RewardSet([RewardSpec(f"{USER}:flaky", label="flaky")], fallback=-1.0)
    s = rs.score(["boom", "ok"])
    assert s.components["flaky"] == [-1.0, 1.0] and s.total == [-1.0, 1.0] and s.failures["flaky"] == 1


def test_hanging_reward_times_out_others_scored():
    rs = RewardSet([RewardSpec(f"{USER}:hangs", label="slow")], timeout_s=1.0)
    rs.score(["warm"])  # worker start-up is not part of what we time here
    t0 = time.monotonic()
    s = rs.score(["fine", "hang here", "fine too"])
    assert time.monotonic() - t0 < 1.0 + 4.0
    assert s.components["slow"] == [1.0, None, 1.0]
    assert s.failures["slow"] == 1 and "timed out after 1 s" in s.errors["slow"][0]


@pytest.mark.parametrize("fn,text,msg", [
    ("not_a_number", "nan", "non-finite score nan"),
    ("wrong_length", "x", "expected a list of 1 scores"),
    ("crashes", "crash", "worker died (exit code 3"),
])
def test_invalid_results_are_failures(fn, text, msg):
    rs = RewardSet([RewardSpec(f"{USER}:{fn}", label="r")])
    s = rs.score([text, "ok"] if fn != "wrong_length" else [text])
    assert s.components["r"][0] is None and s.failures["r"] == 1 and msg in s.errors["r"][0]


def test_several_processes_same_scores():
    comps = [f"text {i} boom" if i % 7 == 0 else f"text {i}" for i in range(40)]
    one = RewardSet([RewardSpec(f"{USER}:flaky")], processes=1).score(comps)
    two = RewardSet([RewardSpec(f"{USER}:flaky")], processes=2).score(comps)
    assert one.components == two.components and one.failures == two.failures == {f"{USER}:flaky": 6}


def test_closure_reward_runs_in_process(caplog):
    seen = []

    def closure(completions, **kw):
        seen.extend(completions)
        return [1.0 for _ in completions]

    with caplog.at_level(logging.WARNING, logger="rewards"):
        rs = RewardSet([RewardSpec(closure, label="c")])
    assert "runs in-process" in caplog.text
    assert rs.score(["a", "b"]).components["c"] == [1.0, 1.0] and seen == ["a", "b"]


@pytest.mark.parametrize("spec,msg", [
    (RewardSpec("math_anwser"), "unknown reward 'math_anwser' (did you mean math_answer"),
    (RewardSpec("math_answer", params={"gold_col": "x"}), "reward 'math_answer' params: unknown key 'gold_col' (did you mean 'gold_column'?)"),
    (RewardSpec("format_answer", params={"style": "xml"}), "key 'style' must be one of '####', 'boxed'"),
    (RewardSpec("regex"), "regex reward needs a 'pattern'"),
    (RewardSpec("overlong", params={"max_length": 10, "buffer": 20}), "overlong needs max_length > 0"),
    (RewardSpec("missing_file.py:fn"), "reward file not found: missing_file.py"),
    (RewardSpec("math_answer", gate="format"), "gate 'format' must be the label of another reward"),
])
def test_bad_specs_are_user_errors(spec, msg):
    with pytest.raises(UserError) as e:
        RewardSet([spec])
    assert msg in str(e.value)


def test_duplicate_labels_and_dict_specs():
    with pytest.raises(UserError, match="duplicate reward label"):
        RewardSet([RewardSpec("repetition"), RewardSpec("repetition")])
    rs = RewardSet([{"name": "format_answer", "weight": 2, "params": {"style": "boxed"}}])
    assert rs.labels == ["format_answer"] and rs.score([r"\boxed{1}"]).total == [2.0]
    with pytest.raises(UserError, match=r"rewards\[0\]: unknown key 'weigth'"):
        RewardSet([{"name": "format_answer", "weigth": 2}])


def test_regex_reward_user_pattern_is_sandboxed():
    rs = RewardSet([RewardSpec("regex", params={"pattern": r"^(a+)+$", "mode": "fullmatch"}, label="rx")], timeout_s=1.0)
    s = rs.score(["aaaa", "a" * 40 + "b"])  # catastrophic backtracking on the second
    assert s.components["rx"] == [1.0, None] and s.failures["rx"] == 1


def test_time_limit_works_off_the_main_thread_with_torch_loaded():
    """No SIGALRM: the limit holds in a worker thread (as in a trainer or a Ray actor)."""
    import threading

    import torch  # noqa: F401  (workers are fresh interpreters: safe with torch and threads loaded)

    # 3 s: the limit must stop the hang, not a sound check slowed down by a loaded machine (1 s flaked under load)
    rs = RewardSet([RewardSpec(f"{USER}:hangs", label="slow"), RewardSpec("math_answer")], timeout_s=3.0)
    result = {}
    t = threading.Thread(target=lambda: result.update(s=rs.score(["hang", r"\boxed{\sqrt{4}}"], answer=["2", "2"])))
    t.start()
    t.join(timeout=60)
    assert not t.is_alive()
    s = result["s"]
    assert s.components["slow"] == [None, 1.0] and s.components["math_answer"] == [0.0, 1.0]
    assert s.failures == {"slow": 1, "math_answer": 0}
