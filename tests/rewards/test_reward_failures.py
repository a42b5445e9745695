"""Issue 12, scoring side: nothing lost, nothing silent. Failed samples are marked, a user reward is
called once per batch (per row, in parallel, only when that fails), a hanging row costs about one
timeout per call, a dead reward trips the breaker, and invalid values are refused by name."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from rewards import RewardScores, RewardSet, RewardSpec
from rltk.core.errors import UserError

HERE = Path(__file__).parent
USER = str(HERE / "user_rewards.py")
H = str(HERE / "hostile_rewards.py")


def test_failed_marks_samples_a_component_failed_on_unless_there_is_a_fallback():
    specs = [RewardSpec(f"{USER}:flaky", label="flaky"), RewardSpec("format_answer", label="fmt")]
    s = RewardSet(specs).score(["ok #### 1", "boom #### 2", "fine"], answer=[None] * 3)
    assert s.failed == [False, True, False] and s.failed_samples["flaky"] == [1]
    assert s.total == [2.0, 1.0, 1.0] and s.disabled == []  # total kept as before; sample 1 is not to be trained on
    s = RewardSet(specs, fallback=0.0).score(["ok #### 1", "boom #### 2", "fine"], answer=[None] * 3)
    assert s.failed == [False, False, False] and s.failures["flaky"] == 1  # the user chose a value: not failed
    hand = RewardScores([1.0, 0.0], {"r": [1.0, None]}, {"r": 1}, {"r": 0.0}, failed_samples={"r": [1]})
    assert hand.failed == [False, True] and hand.disabled == []


def test_a_healthy_user_reward_is_called_once_per_batch():
    rs = RewardSet([RewardSpec(f"{H}:batch_size_seen", label="n"), RewardSpec(f"{H}:call_number", label="k")])
    for _ in range(2):
        s = rs.score([f"row {i}" for i in range(8)])
        assert s.components["n"] == [8.0] * 8  # one call saw the whole batch
        assert len(set(s.components["k"])) == 1 and s.failures == {"n": 0, "k": 0}


def test_a_batch_call_that_raises_falls_back_to_row_calls():
    s = RewardSet([RewardSpec(f"{H}:refuses_batches", label="r")]).score([f"row {i}" for i in range(5)])
    assert s.components["r"] == [1.0] * 5 and s.failures["r"] == 0 and s.failed == [False] * 5


@pytest.mark.parametrize("text,msg", [
    ("str", "returned 'x' (str), expected a number or None"),
    ("numstr", "returned '1.0' (str), expected a number or None"),
    ("bool", "returned True (bool), expected a number or None"),
    ("nan", "returned a non-finite score nan"),
    ("inf", "returned a non-finite score inf"),
])
def test_invalid_values_are_failures_named_by_reward_and_sample(text, msg, caplog):
    rs = RewardSet([RewardSpec(f"{H}:bad_values", label="bad")])
    with caplog.at_level(logging.WARNING, logger="rewards"):
        s = rs.score(["fine", text])
    assert s.components["bad"] == [0.5, None] and s.failed == [False, True]
    assert s.errors["bad"] == [f"sample 1: {msg}"]
    assert f"reward 'bad' failed on 1 of 2 samples (first: sample 1: {msg})" in caplog.text


def test_values_that_overflow_the_total_are_failures_not_inf():
    s = RewardSet([RewardSpec(f"{H}:bad_values", label="big", weight=2.0)]).score(["big", "fine"])
    assert s.components["big"] == [None, 0.5] and s.total == [0.0, 1.0] and s.failed == [True, False]
    assert "score 1e+308 (weight 2) overflows the total" in s.errors["big"][0]
    rs = RewardSet([RewardSpec(f"{H}:bad_values", label="a"), RewardSpec(f"{H}:bad_values", label="b")])
    s = rs.score(["big"])  # each is finite, their sum is not: the second one added is refused
    assert s.components == {"a": [1e308], "b": [None]} and s.total == [1e308] and s.failed == [True]


@pytest.mark.slow
def test_hanging_rows_cost_about_one_timeout_per_call_not_one_per_row():
    timeout = 3.0
    rs = RewardSet([RewardSpec(f"{H}:hangs_on", label="h")], timeout_s=timeout, processes=4, breaker_after=0)
    rows = [("hang " if i in (1, 4, 6) else "ok ") + str(i) for i in range(8)]
    rs.score(["warm"])  # the reward's usual time is known from here on
    for _ in range(2):
        rs.warm()  # worker start-up (after the kills) is not what is measured
        t0 = time.monotonic()
        s = rs.score(rows)
        elapsed = time.monotonic() - t0
        assert s.components["h"] == [None if i in (1, 4, 6) else 1.0 for i in range(8)]
        assert s.failed == [i in (1, 4, 6) for i in range(8)] and s.failures["h"] == 3
        assert all("timed out after 3 s" in e for e in s.errors["h"])
        # three hanging rows one after another would cost 3 x 3 s; side by side they cost about one timeout
        assert elapsed < 2.5 * timeout, elapsed


def test_breaker_stop_names_the_reward():
    rs = RewardSet([RewardSpec(f"{H}:always_hangs", label="dead")], timeout_s=0.5, breaker_after=2)
    s = rs.score(["a"])
    assert s.failed == [True] and "timed out" in s.errors["dead"][0]
    with pytest.raises(UserError, match=r"reward 'dead' timed out on every call in 2 consecutive score\(\) calls"):
        rs.score(["a"])


def test_breaker_disable_scores_none_from_then_on(caplog):
    rs = RewardSet([RewardSpec(f"{H}:always_hangs", label="dead"), RewardSpec("format_answer", label="fmt")],
                   timeout_s=0.5, breaker_after=2, on_breaker="disable")
    with caplog.at_level(logging.ERROR, logger="rewards"):
        first = rs.score(["#### 1"])
        assert first.failed == [True] and first.disabled == []
        tripped = rs.score(["#### 1"])
        assert tripped.failed == [True] and tripped.disabled == ["dead"]  # its timeouts this call were real failures
        t0 = time.monotonic()
        after = rs.score(["#### 1", "x"])
    assert time.monotonic() - t0 < 0.5  # not called any more
    assert after.components == {"dead": [None, None], "fmt": [1.0, 0.0]} and after.total == [1.0, 0.0]
    assert after.failed == [False, False] and after.failures == {"dead": 0, "fmt": 0} and after.disabled == ["dead"]
    assert caplog.text.count("reward 'dead' timed out on every call") == 1 and "DISABLED" in caplog.text


def test_a_reward_that_answers_sometimes_never_trips_the_breaker():
    rs = RewardSet([RewardSpec(f"{H}:hangs_on", label="h")], timeout_s=0.5, breaker_after=1)
    for _ in range(2):
        s = rs.score(["hang", "ok"])
        assert s.components["h"] == [None, 1.0] and s.disabled == []


@pytest.mark.parametrize("kwargs,msg", [
    ({"on_breaker": "ignore"}, "on_breaker must be 'stop' or 'disable'"),
    ({"batch_timeout_s": 0}, "batch_timeout_s must be > 0"),
    ({"breaker_after": -1}, "breaker_after must be >= 0"),
    ({"memory_mb": 0}, "memory_mb > 0"),
])
def test_bad_settings_are_user_errors(kwargs, msg):
    with pytest.raises(UserError, match=msg):
        RewardSet([RewardSpec("format_answer")], **kwargs)


def test_a_reward_file_slow_to_import_loses_no_sample_and_loads_once(tmp_path):
    # A TRL-style reward file that imports torch takes seconds to load in a fresh worker. Loading is
    # not a hanging row: it has its own limit, and the next batch goes to the worker that has it loaded.
    slow = tmp_path / "slow_import.py"
    slow.write_text("import os, time\ntime.sleep(1.5)\n"
                    "def pid(completions, **kw):\n    return [float(os.getpid())] * len(completions)\n")
    rs = RewardSet([RewardSpec(f"{slow}:pid", label="pid")], timeout_s=0.5)
    seconds, pids = [], set()
    for _ in range(4):
        t0 = time.perf_counter()
        s = rs.score([f"row {i}" for i in range(8)])
        seconds.append(time.perf_counter() - t0)
        assert s.failed == [False] * 8 and s.failures == {"pid": 0}
        pids |= set(s.components["pid"])
    assert len(pids) == 1, "every batch ran on the one worker that had loaded the file"
    assert max(seconds[1:]) < 1.0, seconds
