"""Issue 12, sandbox side: what a user reward running in a worker can and cannot reach. Each probe
reward reports through its score; where the kernel refuses user namespaces (see the pool's report),
the namespace-only guarantees are xfail with the reason, as the README says."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from rewards import RewardSet, RewardSpec
from rewards.sandbox import get_pool

H = str(Path(__file__).with_name("hostile_rewards.py"))


def _set(fn: str, **kwargs) -> RewardSet:
    return RewardSet([RewardSpec(f"{H}:{fn}", label="r")], **{"timeout_s": 10.0, **kwargs})


@pytest.fixture(scope="module")
def report() -> dict:
    rs = _set("env_has")
    return get_pool("user", rs.processes, rs.isolation).report()


def _needs(report: dict, what: str) -> None:
    have = report.get("namespaces", []) + [k for k in ("proc", "readonly") if report.get(k)]
    if what not in have:
        pytest.xfail(f"this kernel refused the {what} isolation ({'; '.join(report.get('missing', []))})")


def test_the_environment_is_an_allow_list(monkeypatch):
    for name in ("SECRET_TOKEN", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "RLTK_PASSED_ON"):
        monkeypatch.setenv(name, "s3cr3t")
    # a set with its own settings gets fresh workers, started after the variables were set
    rs = _set("env_has", memory_mb=4000, pass_env=["RLTK_PASSED_ON"])
    try:
        s = rs.score(["SECRET_TOKEN", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "RLTK_PASSED_ON", "PATH"])
        assert s.components["r"] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
        assert _set("private_home", memory_mb=4000, pass_env=["RLTK_PASSED_ON"]).score(["x"]).components["r"] == [1.0]
    finally:
        rs.close()


def test_a_memory_bomb_fails_its_sample_and_the_trainer_lives():
    rs = _set("allocates_8gb")
    s = rs.score(["x"])
    assert s.components["r"] == [None] and s.failed == [True]
    assert "MemoryError" in s.errors["r"][0]
    assert _set("env_has").score(["PATH"]).components["r"] == [1.0]  # the pool is healthy afterwards


def _alive_with_arg(marker: str) -> list[int]:
    """Host pids (not zombies) whose command line has ``marker`` as an argument."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in args and state != "Z":
            found.append(int(pid))
    return found


def _soon(alive: bool, marker: str, within_s: float = 10.0) -> bool:
    """Whether a process with ``marker`` is (``alive``) or is not running, polling up to ``within_s``
    (a process just exec'd may show an empty command line for a moment; a killed one takes a moment to go)."""
    deadline = time.monotonic() + within_s
    while bool(_alive_with_arg(marker)) != alive:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_what_a_reward_spawns_dies_with_it_on_timeout_and_on_close():
    marker = f"{9000 + os.getpid() % 1000}.{int(time.time() * 1000) % 100000}"
    rs = _set("spawns_sleeper", memory_mb=3900, breaker_after=0)
    try:
        s = rs.score(["ok"], marker=[marker])
        assert s.components["r"] == [1.0] and _soon(True, marker)  # its child lives on while the worker does
        rs.close()
        assert _soon(False, marker), "a reward's child outlived the pool's close"
        rs = _set("spawns_sleeper", memory_mb=3900, breaker_after=0, timeout_s=1.0)
        s = rs.score(["hang"], marker=[marker])
        assert s.components["r"] == [None] and "timed out" in s.errors["r"][0]
        assert _soon(False, marker), "a timed-out reward's child outlived it"
    finally:
        rs.close()


class _Guard:
    """Counts SIGTERMs sent to this (test) process instead of dying of them."""

    def __enter__(self) -> "_Guard":
        self.got = 0
        self._old = signal.signal(signal.SIGTERM, self._on)
        return self

    def _on(self, *_: object) -> None:
        self.got += 1

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._old)


def test_a_reward_signalling_its_parent_does_not_reach_the_trainer():
    with _Guard() as guard:
        s = _set("signals_parent").score(["x"])
        time.sleep(0.5)
    assert guard.got == 0
    # its own supervisor (pid namespace: itself) takes the signal: at worst the sample fails
    assert s.components["r"] == [1.0] or "worker died" in s.errors["r"][0]


def test_a_reward_cannot_signal_or_inspect_the_trainer_by_pid(report):
    _needs(report, "pid")
    with _Guard() as guard:
        s = _set("signals_pid").score(["x"], pid=[os.getpid()])
        time.sleep(0.5)
    assert guard.got == 0 and s.components["r"] == [0.0]
    _needs(report, "proc")
    assert _set("sees_pid").score(["x"], pid=[os.getpid()]).components["r"] == [0.0]  # nor read its environ


def test_a_reward_has_no_network(report):
    _needs(report, "net")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert _set("connects").score(["x"], port=[port]).components["r"] == [0.0]
        rs = _set("connects", network=True, memory_mb=3800)
        try:
            assert rs.score(["x"], port=[port]).components["r"] == [1.0]  # network=True lets it out
        finally:
            rs.close()


def test_a_reward_cannot_write_outside_its_private_folder(report, tmp_path):
    _needs(report, "readonly")
    target = tmp_path / "planted.txt"
    assert _set("writes").score(["x"], path=[str(target)]).components["r"] == [0.0]
    assert not target.exists()
    assert _set("writes").score(["x"], path=["inside.txt"]).components["r"] == [1.0]  # its working directory
