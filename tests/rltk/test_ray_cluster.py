"""A real two-host Ray cluster on one machine: two Linux network namespaces joined by a veth pair.

Host A (``10.231.X.1``) runs the Ray head and the driver (the GRPO loop and its learner); host B
(``10.231.X.2``) joins as a second node offering the custom resource ``node_b``, which the rollout
workers require, so they run on B and every rollout, weight sync and restart crosses the veth link.
Traffic stays inside the namespaces this test creates; the machine's own address is never used.
Namespaces and every process in them are removed afterwards, also when the test fails.
Needs root (``ip netns``); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.netns, pytest.mark.slow]

HEAD_PORT = 6379  # inside namespace A: no clash with anything on the host


@dataclass
class TwoHosts:
    a: str  # namespace names
    b: str
    ip_a: str
    ip_b: str
    head: str  # HOST:PORT of the Ray head on A
    env: dict[str, str]  # environment every Ray process and driver runs with
    tmp: Path

    def run(self, ns: str, args: list[str], timeout: float, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["ip", "netns", "exec", ns, "timeout", "-s", "KILL", str(int(timeout)), *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout + 30)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args[:3])}... in {ns} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}")
        return proc


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL every process inside namespace ``ns`` (only processes this test started live there)."""
    for _ in range(50):
        pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


@pytest.fixture(scope="module")
def two_hosts():
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("building network namespaces needs root on Linux (ip netns)")
    if shutil.which("ip") is None:
        pytest.skip("the `ip` tool (iproute2) is not installed")
    tag = secrets.token_hex(3)
    a, b = f"rltk-a-{tag}", f"rltk-b-{tag}"
    veth_a, veth_b = f"rka{tag}", f"rkb{tag}"  # interface names: at most 15 characters
    subnet = f"10.231.{random.randint(1, 254)}"
    tmp = Path(tempfile.mkdtemp(prefix=f"rltk-ns-{tag}-"))  # short: Ray's unix sockets live under it
    made: list[str] = []
    try:
        for ns in (a, b):
            proc = _ip("netns", "add", ns, check=False)
            if proc.returncode != 0:
                pytest.skip(f"cannot create a network namespace: {proc.stderr.strip()}")
            made.append(ns)
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        _ip("link", "set", veth_a, "netns", a)
        _ip("link", "set", veth_b, "netns", b)
        _ip("-n", a, "addr", "add", f"{subnet}.1/24", "dev", veth_a)
        _ip("-n", b, "addr", "add", f"{subnet}.2/24", "dev", veth_b)
        for ns, dev in ((a, veth_a), (b, veth_b)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", dev, "up")
        env = dict(os.environ, RAY_AUTH_MODE="token", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
        for var in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):  # a private-loopback setting must not leak in
            env.pop(var, None)
        hosts = TwoHosts(a, b, f"{subnet}.1", f"{subnet}.2", f"{subnet}.1:{HEAD_PORT}", env, tmp)
        ray = str(Path(sys.executable).with_name("ray"))
        # the head keeps Ray's job server (on A's own 127.0.0.1:8265) for the `ray job submit` test
        hosts.run(a, [ray, "start", "--head", f"--node-ip-address={hosts.ip_a}", f"--port={HEAD_PORT}", "--num-cpus=1",
                      f"--temp-dir={tmp}/a", "--disable-usage-stats"], timeout=120)
        hosts.run(b, [ray, "start", f"--address={hosts.head}", f"--node-ip-address={hosts.ip_b}", "--num-cpus=2",
                      '--resources={"node_b": 2}', f"--temp-dir={tmp}/b", "--disable-usage-stats"], timeout=120)
        yield hosts
    finally:
        for ns in made:
            _kill_namespace_processes(ns)
        for ns in made:
            _ip("netns", "del", ns, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        leftover = set(_ip("netns", "list", check=False).stdout.split()) & {a, b}
        assert not leftover, f"namespaces left behind: {leftover}"


DRIVER = textwrap.dedent('''
    """Driver on host A: GRPO steps with rollout workers on host B (custom resource node_b); with "kill", one
    worker's process is killed while step 2's rollouts are in flight. Prints one JSON line.
    argv: RAY_ADDRESS ("-": none given, join $RAY_ADDRESS as inside `ray job submit`), RUN_DIR, STEPS, kill|nokill"""
    import json, os, signal, sys
    from rewards import RewardSpec
    from rltk.data import DataConfig
    from rltk.rollouts import make_backend
    from rltk.grpo import CheckpointConfig, GRPOConfig, GRPOJobConfig, LogConfig, train
    from rltk.rollouts import DistributedConfig
    from rltk.models import LoraSettings, ModelConfig
    from rltk.rollouts import SamplingConfig

    cfg = GRPOJobConfig(
        model=ModelConfig(spec="tiny-random", quant="none", lora=LoraSettings(r=4, alpha=8)),
        data=DataConfig(source="arithmetic", limit=64),
        sampling=SamplingConfig(group_size=4, max_new_tokens=8),
        grpo=GRPOConfig(steps=int(sys.argv[3]), prompts_per_step=4, lr=1e-2),
        rewards=[RewardSpec("regex", params={"pattern": "[0-9]"}, label="digit")],
        checkpoint=CheckpointConfig(every=0), log=LogConfig(samples_every=0, live=False),
        distributed=DistributedConfig(workers=2, ray_address=None if sys.argv[1] == "-" else sys.argv[1],
                                      num_cpus_per_worker=1.0,
                                      resources_per_worker={"node_b": 1.0}, max_restarts=1),
        seed=0, run_dir=sys.argv[2])
    backend = make_backend(cfg.distributed, cfg.model, cfg.sampling, cfg.seed, None)
    workers_before = backend.worker_info()
    submitted, collected = [], []

    class KillDuringStep2:  # the loop's backend, with a kill right after step 2 is submitted
        def __getattr__(self, name):
            return getattr(backend, name)
        def submit(self, requests, seed):
            submitted.append([r.index for r in requests])
            handle = backend.submit(requests, seed)
            if len(submitted) == 2 and sys.argv[4] == "kill":
                os.kill(workers_before[0]["pid"], signal.SIGKILL)
            return handle
        def collect(self, handle):
            groups = backend.collect(handle)
            collected.append([g.index for g in groups])
            return groups
        def close(self):
            pass

    result = train(cfg, backend=KillDuringStep2(), live=False)
    out = {"steps": result.steps, "last_step": result.history[-1]["step"], "submitted": submitted,
           "collected": collected, "before": workers_before, "after": backend.worker_info(),
           "events": [e for r in result.history for e in r.get("events", [])],
           "sync_bytes": [r.get("sync_bytes") for r in result.history], "joined": not backend.session.local,
           "ray_address_env": os.environ.get("RAY_ADDRESS")}
    backend.close()
    print(json.dumps(out))
''')


def test_grpo_with_rollout_workers_on_a_second_host(two_hosts):
    driver = two_hosts.tmp / "driver.py"
    driver.write_text(DRIVER)
    proc = two_hosts.run(two_hosts.a, [sys.executable, str(driver), two_hosts.head, str(two_hosts.tmp / "run"), "3",
                                       "kill"], timeout=400)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["steps"] == 3 and result["last_step"] == 3  # the run completed its 3 steps
    # every rollout worker ran on host B, before and after one of them was killed and restarted
    assert {w["node_ip"] for w in result["before"] + result["after"]} == {two_hosts.ip_b}
    assert result["after"][0]["pid"] != result["before"][0]["pid"]
    up, restart = result["events"]  # logged by the run: where the workers started, then the restart
    assert up.startswith(f"2 rollout worker(s) up on {two_hosts.ip_b} x2 (Ray cluster {two_hosts.head}")
    assert "rollout worker 0 restarted" in restart and f"@{two_hosts.ip_b} -> pid " in restart
    # each prompt's group exactly once, in order
    assert result["collected"] == result["submitted"] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert all(b and b > 0 for b in result["sync_bytes"])  # adapters crossed to host B after every update


def test_ray_job_submit_runs_grpo_on_the_cluster(two_hosts):
    """The README's route: `ray job submit` (token auth) to the head's job server; the job's driver finds the
    cluster through RAY_ADDRESS and its rollout workers run on host B."""
    job_dir = two_hosts.tmp / "job"
    job_dir.mkdir()
    (job_dir / "driver.py").write_text(DRIVER)
    ray = str(Path(sys.executable).with_name("ray"))
    proc = two_hosts.run(two_hosts.a, [ray, "job", "submit", "--address", "http://127.0.0.1:8265",
                                       "--working-dir", str(job_dir), "--", sys.executable, "driver.py", "-",
                                       str(two_hosts.tmp / "job-run"), "2", "nokill"], timeout=400)
    line = next(ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{"))
    result = json.loads(line)
    assert result["joined"] and result["ray_address_env"]  # joined the cluster the job runs on
    assert result["steps"] == 2 and result["collected"] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert {w["node_ip"] for w in result["after"]} == {two_hosts.ip_b}
    assert len(result["events"]) == 1 and f"up on {two_hosts.ip_b} x2" in result["events"][0]  # no restarts
