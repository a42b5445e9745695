"""Rollouts on Ray (rltk.rollouts: ray_rollouts, ray_worker, ray_session) on the tiny model, on one private loopback Ray instance.

Ray starts once for the module (each start costs seconds on 2 cores) and the 2-worker backend is shared;
the test that exhausts a worker's restarts runs last and breaks that backend on purpose.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from adapter_helpers import random_lora_b  # tests/rltk
from rltk.rollouts import make_backend
from rltk.rollouts.ray_rollouts import RayRollouts
from rltk.rollouts.ray_shares import check_groups, shard_seed, split_contiguous, state_nbytes
from rltk.core.errors import UserError
from rltk.rollouts import DistributedConfig
from rltk.models import LoraSettings, ModelConfig, footprint_bytes, tiny_policy, trainable_state
from rltk.rollouts.cores import pin_process, thread_cores
from rltk.rollouts.ray_session import auth_mode_for_join
from rltk.rollouts import PromptRequest, RolloutWorker, SamplingConfig

pytestmark = pytest.mark.ray

TINY = ModelConfig(spec="tiny-random", quant="none", lora=LoraSettings(r=4, alpha=8))
SAMPLING = SamplingConfig(group_size=4, max_new_tokens=8)


DIST = DistributedConfig(workers=2, num_cpus_per_worker=0.5, max_restarts=1)


def requests(n: int, start: int = 0) -> list[PromptRequest]:
    return [PromptRequest(i, {"i": i}, [{"role": "user", "content": f"what is {i} + {i}?"}]) for i in range(start, start + n)]


@contextlib.contextmanager
def one_thread():
    """Torch on one thread, like the actors here (num_cpus=0.5), so in-process arithmetic matches theirs bit for bit."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def perturbed_learner(scale: float, seed: int) -> tuple:
    """The learner's tiny policy with LoRA B moved off zero, so the adapter changes what is sampled."""
    pol = tiny_policy(lora=TINY.lora)
    random_lora_b(pol.model, scale, seed)
    return pol, trainable_state(pol.model)


@pytest.fixture(scope="module")
def ray_session():
    from rltk.rollouts.ray_session import connect

    session = connect(None, num_cpus=4)
    yield session
    session.close()


STARTUP_EVENTS: list[str] = []


@pytest.fixture(scope="module")
def backend(ray_session):
    b = RayRollouts(DIST, TINY, SAMPLING, seed=0)
    STARTUP_EVENTS[:] = b.events()  # drained here, so each test sees only the events it causes
    yield b
    b.close()


# ----------------------------------------------------------------------------- no Ray needed


def test_shares_are_contiguous_cover_everything_and_seeds_are_stable():
    for n in range(0, 12):
        for parts in range(1, 5):
            shares = split_contiguous(n, parts)
            assert [i for a, b in shares for i in range(a, b)] == list(range(n))
            sizes = [b - a for a, b in shares]
            assert all(s > 0 for s in sizes) and (not sizes or max(sizes) - min(sizes) <= 1)
    assert shard_seed(5, 0) == 5 and shard_seed(5, 3) == shard_seed(5, 3) != shard_seed(5, 4)


def test_check_groups_refuses_missing_duplicate_or_reordered_groups():
    reqs = requests(3)
    worker = RolloutWorker(None, SAMPLING, policy=tiny_policy(lora=TINY.lora))
    groups = worker.generate(reqs, seed=0)
    check_groups(groups, reqs, "w")
    for bad in (groups[:2], groups + groups[:1], [groups[1], groups[0], groups[2]]):
        with pytest.raises(RuntimeError, match="asked for"):
            check_groups(bad, reqs, "w")


def test_joining_sets_token_auth_only_when_a_token_exists(tmp_path):
    token = tmp_path / "token"
    assert auth_mode_for_join({"RAY_AUTH_TOKEN_PATH": str(token)}) is None
    token.write_text("secret")
    assert auth_mode_for_join({"RAY_AUTH_TOKEN_PATH": str(token)}) == "token"
    assert auth_mode_for_join({"RAY_AUTH_TOKEN_PATH": str(token), "RAY_AUTH_MODE": "disabled"}) is None


def test_joining_a_dead_address_fails_fast_with_a_clear_message():
    import socket

    from rltk.rollouts.ray_session import connect

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match=f"127.0.0.1:{port}.*nothing answers"):
        connect(f"127.0.0.1:{port}")
    with pytest.raises(UserError, match="must be 'auto' or HOST:PORT"):
        connect("not-an-address")


def test_zero_workers_runs_in_process_without_ray(monkeypatch):
    from rltk.rollouts import LocalRollouts

    monkeypatch.setitem(sys.modules, "ray", None)  # any `import ray` now fails
    pol = tiny_policy(lora=TINY.lora)
    backend = make_backend(replace(DIST, workers=0), TINY, SAMPLING, seed=0, init_adapter=None, policy=pol)
    reqs = requests(3)
    assert isinstance(backend, LocalRollouts) and backend.worker.policy is pol  # shares the learner's model
    groups = backend.collect(backend.submit(reqs, seed=7))
    assert [g.index for g in groups] == [0, 1, 2]
    backend.close()


# ----------------------------------------------------------------------------- local Ray


def _descendants(pid: int) -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process(pid).children(recursive=True)} | {pid}


def test_bad_worker_settings_are_one_line_user_errors(ray_session, tmp_path):
    missing = tmp_path / "no-model-here"
    with pytest.raises(UserError, match=f"a rollout worker could not start: unknown model '{missing}'"):
        RayRollouts(replace(DIST, workers=1), replace(TINY, spec=str(missing)), SAMPLING)  # raised inside the actor
    with pytest.raises(UserError, match="adapter folder .* has no adapter_config.json"):
        RayRollouts(DIST, TINY, SAMPLING, init_adapter=str(tmp_path))
    with pytest.raises(UserError, match="num_gpus_per_worker is 0"):
        RayRollouts(DIST, replace(TINY, device="cuda"), SAMPLING)


def test_workers_the_cluster_cannot_place_are_a_user_error(ray_session, monkeypatch):
    import ray

    monkeypatch.setattr("rltk.rollouts.ray_rollouts.PLACEMENT_TIMEOUT_S", 1.0)
    with pytest.raises(UserError, match=r"cannot place 2 rollout workers of \{.*'gpu_a100': 1.0\} each .* free"):
        RayRollouts(replace(DIST, resources_per_worker={"gpu_a100": 1.0}), TINY, SAMPLING)
    states = [pg["state"] for pg in ray.util.placement_group_table().values()]
    assert "REMOVED" in states and "PENDING" not in states  # the unplaceable group was withdrawn, not left waiting


def test_the_starting_adapter_is_shipped_to_workers_not_read_from_the_drivers_disk(ray_session, tmp_path):
    pol, state = perturbed_learner(scale=0.5, seed=5)
    pol.model.save_pretrained(str(tmp_path / "sft-adapter"))
    with RayRollouts(replace(DIST, workers=1), TINY, SAMPLING, init_adapter=str(tmp_path / "sft-adapter")) as b:
        [info] = b.worker_info()
        assert info["adapter_source"] and not info["adapter_source"].startswith(str(tmp_path))
        reqs = requests(2)
        groups = b.collect(b.submit(reqs, seed=4))
    with one_thread():
        expect = RolloutWorker(None, SAMPLING, policy=pol).generate(reqs, seed=4)
    assert [g.completion_ids for g in groups] == [g.completion_ids for g in expect]  # sampled with the SFT adapter


def test_local_ray_listens_on_loopback_only(ray_session, backend):
    """Every socket that a process of our Ray instance listens on is bound to 127.0.0.1."""
    assert ray_session.local and ray_session.address.startswith("127.0.0.1:")
    ours = _descendants(os.getpid())
    out = subprocess.run(["ss", "-H", "-ltnp"], capture_output=True, text=True, timeout=30, check=True).stdout
    listeners = []
    for line in out.splitlines():
        cols = line.split()
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if pids & ours:
            listeners.append(cols[3])
    assert len(listeners) >= 4, out  # gcs, raylet, workers, this driver: there is something to check
    loopback = re.compile(r"^(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]|\[::1\]):\d+$")
    exposed = [addr for addr in listeners if not loopback.match(addr)]
    assert not exposed, f"Ray listens beyond loopback: {exposed}"
    assert {w["node_ip"] for w in backend.worker_info()} == {"127.0.0.1"}
    assert STARTUP_EVENTS == ["2 rollout worker(s) up on 127.0.0.1 x2 (private Ray on loopback, placement PACK, "
                              "each CPU=0.5)"]


def test_ray_workers_return_every_group_once_in_order_like_the_in_process_worker(backend):
    reqs = requests(5, start=10)
    groups = backend.collect(backend.submit(reqs, seed=3))
    assert [g.index for g in groups] == [r.index for r in reqs]
    assert [g.worker_id for g in groups] == ["ray-0"] * 3 + ["ray-1"] * 2  # contiguous shares
    assert all(len(g.completion_ids) == SAMPLING.group_size for g in groups)
    # the first share samples with the step seed, exactly as one in-process worker does
    local = RolloutWorker(None, SAMPLING, policy=tiny_policy(lora=TINY.lora))
    with one_thread():
        expect = local.generate(reqs[:3], seed=3)
    assert [g.completion_ids for g in groups[:3]] == [g.completion_ids for g in expect]
    for got, want in zip(groups[:3], expect):
        for a, b in zip(got.logprobs, want.logprobs):
            assert a == pytest.approx(b, abs=1e-6)


def test_sync_moves_only_the_lora_tensors_and_workers_sample_with_them(backend):
    pol, state = perturbed_learner(scale=0.5, seed=1)
    info = backend.sync(state, version=1)
    assert info["sync_bytes"] == state_nbytes(state) > 0
    assert info["sync_bytes"] < footprint_bytes(pol.model) / 5  # adapters, not the base
    assert info["sync_seconds"] > 0
    assert backend.policy_versions() == [1, 1]
    reqs = requests(4)
    groups = backend.collect(backend.submit(reqs, seed=5))
    assert {g.policy_version for g in groups} == {1}
    # worker 1's share sampled with the learner's adapter: an in-process worker on the learner's model agrees
    local = RolloutWorker(None, SAMPLING, policy=pol)
    with one_thread():
        expect = local.generate(reqs[2:], seed=shard_seed(5, 2))
        base = RolloutWorker(None, SAMPLING, policy=tiny_policy(lora=TINY.lora)).generate(reqs[2:], seed=shard_seed(5, 2))
    assert [g.completion_ids for g in groups[2:]] == [g.completion_ids for g in expect]
    assert [g.completion_ids for g in expect] != [g.completion_ids for g in base]  # the adapter mattered


def test_pipelined_submit_samples_with_the_version_it_was_submitted_under(backend):
    _, state = perturbed_learner(scale=0.3, seed=2)
    backend.sync(state, version=2)
    ahead = backend.submit(requests(4, start=100), seed=9)  # step t+1 starts before the learner's update ...
    _, newer = perturbed_learner(scale=0.3, seed=3)
    info = backend.sync(newer, version=3)  # ... which lands while (or after) it runs
    assert info["sync_bytes"] == state_nbytes(newer)
    groups = backend.collect(ahead)
    assert [g.index for g in groups] == list(range(100, 104))
    assert {g.policy_version for g in groups} == {2}  # one step off-policy, as recorded
    assert {g.policy_version for g in backend.collect(backend.submit(requests(2), seed=1))} == {3}


# ----------------------------------------------------------------------------- the GRPO loop on Ray


class Recorder:
    """Wraps a rollout backend: records what the loop submitted and got back, can act right after a submit,
    and leaves the wrapped backend open when the run closes it (the module's Ray workers serve several runs)."""

    def __init__(self, inner, after_submit=None):
        self.inner, self.after_submit = inner, after_submit
        self.submitted: list[list[int]] = []
        self.collected: list[list[int]] = []
        self.versions: list[list[int]] = []

    def __getattr__(self, name):  # shares_model, worker, ... of the wrapped backend
        return getattr(self.inner, name)

    def submit(self, requests, seed):
        self.submitted.append([r.index for r in requests])
        handle = self.inner.submit(requests, seed)
        if self.after_submit is not None:
            self.after_submit(len(self.submitted))
        return handle

    def collect(self, handle):
        groups = self.inner.collect(handle)
        self.collected.append([g.index for g in groups])
        self.versions.append(sorted({g.policy_version for g in groups}))
        return groups

    def sync(self, state, version):
        return self.inner.sync(state, version)

    def events(self):
        return self.inner.events()

    def close(self):
        pass


def grpo_job(tmp_path, name: str, steps: int = 3, pipeline: bool = False, workers: int = 2):
    from rewards import RewardSpec

    from rltk.data import DataConfig
    from rltk.grpo import CheckpointConfig, GRPOConfig, GRPOJobConfig, LogConfig

    return GRPOJobConfig(
        model=TINY, data=DataConfig(source="arithmetic", limit=64), sampling=SAMPLING,
        grpo=GRPOConfig(steps=steps, prompts_per_step=4, lr=1e-2),
        # a reward with variance on random text, so every step updates the adapter and syncs it
        rewards=[RewardSpec("regex", params={"pattern": "[0-9]"}, label="digit")],
        checkpoint=CheckpointConfig(every=0), log=LogConfig(samples_every=1, samples_groups=4, live=False),
        distributed=DistributedConfig(workers=workers, pipeline=pipeline, num_cpus_per_worker=0.5, max_restarts=1),
        seed=3, run_dir=str(tmp_path / name))


def _samples_by_step(run_dir) -> list[list[tuple[int, str]]]:
    import json

    rows: dict[int, list[tuple[int, str]]] = {}
    for line in (run_dir / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["sample"] == 0:
            rows.setdefault(rec["step"], []).append((rec["index"], rec["row"]["question"]))
    return [rows[k] for k in sorted(rows)]


def test_grpo_run_completes_when_a_worker_is_killed_mid_run(backend, tmp_path):
    """The issue's kill test: SIGKILL one rollout worker while step 2's rollouts are in flight; the run reaches
    its last step, and every prompt's group reached the learner exactly once."""
    from rltk.grpo import train

    victim = backend.worker_info()[1]["pid"]
    killed = []

    def kill_during_step_2(n_submitted: int) -> None:
        if n_submitted == 2:
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    rec = Recorder(backend, after_submit=kill_during_step_2)
    result = train(grpo_job(tmp_path, "killed"), backend=rec, live=False)
    assert killed and result.steps == 3 and result.history[-1]["step"] == 3
    assert rec.collected == rec.submitted == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    events = [e for rec_ in result.history for e in rec_.get("events", [])]
    assert len(events) == 1 and "rollout worker 1 restarted" in events[0] and f"pid {victim}@" in events[0]
    assert result.history[1].get("events") == events  # logged with the step it happened in
    assert backend.worker_info()[1]["pid"] != victim
    assert all(r["sync_bytes"] > 0 for r in result.history)  # the adapter moved every step
    assert [r["policy_version"] for r in result.history] == [1, 2, 3]
    assert rec.versions == [[0], [1], [2]]  # on-policy: each step sampled by the adapter of the step before


def test_same_seed_gives_the_same_data_order_with_or_without_ray(backend, tmp_path):
    from rltk.grpo import train

    in_process = train(grpo_job(tmp_path, "w0", steps=2, workers=0), live=False)
    on_ray = train(grpo_job(tmp_path, "w2", steps=2), backend=Recorder(backend), live=False)
    order0, order2 = _samples_by_step(in_process.run_dir), _samples_by_step(on_ray.run_dir)
    assert len(order0) == 2 and [len(s) for s in order0] == [4, 4]
    assert order0 == order2


def test_pipelined_grpo_samples_one_step_off_policy_and_completes(backend, tmp_path):
    from rltk.grpo import train

    rec = Recorder(backend)
    result = train(grpo_job(tmp_path, "pipe", steps=3, pipeline=True), backend=rec, live=False)
    assert result.history[-1]["step"] == 3
    assert rec.collected == rec.submitted == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    # step 2's prompts were submitted before step 1's update: sampled by adapter 0, one step behind the learner
    assert rec.versions == [[0], [0], [1]]
    assert [r["policy_version"] for r in result.history] == [1, 2, 3]


def test_reward_tasks_score_grpo_rewards_on_ray_with_the_same_result(backend, tmp_path, monkeypatch):
    """``distributed.reward_tasks: true``: the run's rewards are scored as Ray tasks (one share per worker),
    and the run is the same as with in-process scoring."""
    import dataclasses

    from rltk.grpo import train
    from rltk.rollouts.ray_rewards import RayRewardSet

    calls = []
    score = RayRewardSet.score
    monkeypatch.setattr(RayRewardSet, "score", lambda self, *a, **k: calls.append(self.shares) or score(self, *a, **k))
    plain = train(grpo_job(tmp_path, "plain", steps=2), backend=Recorder(backend), live=False)
    job = grpo_job(tmp_path, "tasks", steps=2)
    job = dataclasses.replace(job, distributed=dataclasses.replace(job.distributed, reward_tasks=True))
    tasks = train(job, backend=Recorder(backend), live=False)
    assert calls == [2, 2]  # one scoring call per step, split over the 2 workers
    assert [r["reward_mean"] for r in tasks.history] == [r["reward_mean"] for r in plain.history]


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores")
def test_pinned_learner_and_worker_each_run_on_their_own_core(ray_session, tmp_path):
    """``distributed.worker_cores`` / ``learner_cores`` (2 cores as 2 x 1 core): the worker process runs on core 1,
    every thread of the learner on core 0 with one torch thread while it trains, and the process gets its cores
    and threads back when the run ends."""
    from rltk.grpo import train

    before, threads = os.sched_getaffinity(0), torch.get_num_threads()
    cfg = grpo_job(tmp_path, "pinned", steps=2, workers=1)
    cfg = replace(cfg, distributed=replace(cfg.distributed, learner_cores=[0], worker_cores=[[1]]))
    seen = []
    with RayRollouts(cfg.distributed, TINY, SAMPLING, seed=0) as b:
        [info] = b.worker_info()
        assert info["cores"] == [1] and info["threads"] == 1
        rec = Recorder(b, after_submit=lambda n: seen.append((thread_cores(), torch.get_num_threads())))
        result = train(cfg, backend=rec, live=False)
    assert result.history[-1]["step"] == 2 and len(seen) == 2
    assert all(cores and all(c == [0] for c in cores) and n == 1 for cores, n in seen)
    assert os.sched_getaffinity(0) == before and torch.get_num_threads() == threads
    assert all(set(c) == before for c in thread_cores())


def test_killed_worker_is_restarted_its_prompts_regenerated_then_restarts_run_out(backend):
    """Kill a worker's process mid-rollout: Ray restarts it, it gets the step's adapter again, its share is redone
    with the same seed (so the step's groups equal an undisturbed run); once no restarts are left: a clear UserError."""
    _, state = perturbed_learner(scale=0.4, seed=4)
    backend.sync(state, version=4)
    reqs = requests(6, start=200)
    undisturbed = backend.collect(backend.submit(reqs, seed=11))
    backend.events()
    victim = backend.worker_info()[0]["pid"]
    before = backend.restarts
    assert before[0] == 0  # worker 0 has its one restart left (the loop test killed worker 1)
    handle = backend.submit(reqs, seed=11)
    os.kill(victim, signal.SIGKILL)  # the actor dies with its share in flight
    groups = backend.collect(handle)
    assert [g.index for g in groups] == [r.index for r in reqs]  # each prompt's group exactly once
    assert [g.completion_ids for g in groups] == [g.completion_ids for g in undisturbed]
    assert {g.policy_version for g in groups} == {4}  # the restarted actor got version 4 back before redoing its share
    events = backend.events()
    assert len(events) == 1 and "rollout worker 0 restarted" in events[0] and f"pid {victim}@" in events[0]
    info = backend.worker_info()
    assert info[0]["pid"] != victim and backend.restarts == [1, before[1]]
    assert backend.policy_versions() == [4, 4]

    # max_restarts=1 is now used up for worker 0
    handle = backend.submit(reqs, seed=12)
    os.kill(info[0]["pid"], signal.SIGKILL)
    with pytest.raises(UserError, match=r"rollout worker 0 .* no restarts left \(distributed.max_restarts=1, 1 used\)"):
        backend.collect(handle)


def test_rewards_scored_as_ray_tasks_equal_in_process_scoring_and_keep_time_limits(ray_session, tmp_path):
    from rewards import RewardSet, RewardSpec

    from rltk.rollouts.ray_rewards import RayRewardSet

    user = tmp_path / "slow_reward.py"
    user.write_text(
        "import time\n"
        "def stalls_on_hang(completions, **kw):\n"
        "    if any('hang' in c for c in completions):\n"
        "        time.sleep(120)\n"
        "    return [float(len(c)) for c in completions]\n"
    )
    specs = [RewardSpec("math_answer", label="correct"), RewardSpec(f"{user}:stalls_on_hang", weight=0.1, label="len")]
    completions = ["#### 4", "#### 5", "so 4", "hang", "#### 8", "x"]
    columns = {"answer": ["4", "4", "4", "4", "8", "1"], "prompts": ["q"] * 6}
    local = RewardSet(specs, timeout_s=1.0).score(completions, **columns)
    remote = RayRewardSet(specs, timeout_s=1.0, shares=3).score(completions, **columns)
    assert remote.components == local.components and remote.total == pytest.approx(local.total)
    assert remote.components["len"][3] is None and remote.failures == local.failures == {"correct": 0, "len": 1}
    assert remote.errors["len"] == local.errors["len"] and remote.errors["len"][0].startswith("sample 3:")


def test_core_pinning_settings_are_checked(tmp_path):
    from rltk.core.config import from_dict
    from rltk.grpo import GRPOJobConfig, train

    with pytest.raises(UserError, match=r"worker_cores needs one core list per worker \(1\), got 2"):
        from_dict(GRPOJobConfig, {"distributed": {"workers": 1, "worker_cores": [[0], [1]]}})
    with pytest.raises(UserError, match="learner_cores: a core list must be non-empty"):
        from_dict(GRPOJobConfig, {"distributed": {"learner_cores": []}})
    before = os.sched_getaffinity(0)
    with pytest.raises(UserError, match=r"^distributed.learner_cores: core 4096 is not on this machine \(it has cores 0-"):
        pin_process([0, 4096], "distributed.learner_cores")
    assert os.sched_getaffinity(0) == before
    cfg = grpo_job(tmp_path, "bad-cores", steps=1, workers=0)
    with pytest.raises(UserError, match="core 4096 is not on this machine"):
        train(replace(cfg, distributed=replace(cfg.distributed, learner_cores=[4096])), live=False)
    assert os.sched_getaffinity(0) == before


def test_reward_tasks_without_workers_is_a_config_error():
    from rltk.core.config import from_dict
    from rltk.core.errors import UserError
    from rltk.grpo import GRPOJobConfig

    with pytest.raises(UserError, match="reward_tasks: true needs Ray rollout workers"):
        from_dict(GRPOJobConfig, {"distributed": {"reward_tasks": True}})
