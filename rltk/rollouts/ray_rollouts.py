"""Rollouts on Ray: N ``RolloutWorker`` actors, adapter-only weight sync, surviving worker loss.

The GRPO loop talks to a *rollout backend* (``submit`` → ``collect``, ``sync``,
``events``, ``close``; see ``rltk.rollouts.backend.RolloutBackend``). :func:`make_backend`
returns the in-process ``LocalRollouts`` for ``workers=0`` (no Ray at all) and
:class:`RayRollouts` for ``workers >= 1``. Both run the same ``RolloutWorker``
class: here it becomes a Ray actor.

How a step flows through :class:`RayRollouts`:

1. ``submit(requests, seed)`` splits the step's prompts into contiguous shares,
   one per actor, and starts ``generate`` on each; it returns at once with a
   :class:`RolloutHandle` holding the ``ObjectRef`` of every share.
2. ``collect(handle)`` waits for the shares and joins them back in request
   order. A share whose actor died (killed process, out of memory, lost node)
   is generated again: Ray restarts the actor (``max_restarts``), the restarted
   actor has lost its adapter, so the adapter that sampled this step is sent
   again before its share is retried; the event is recorded for ``events()``.
   Every request gets exactly one group (checked), none twice, none lost.
   When Ray has no restarts left the run stops with a :class:`UserError`;
   the loop's last checkpoint is untouched.
3. ``sync(state, version)`` puts the LoRA tensors (only those: a few MB, not
   the 4-bit base) into the object store once; every actor loads that one
   object. It reports ``sync_bytes`` and ``sync_seconds`` (and, pipelined,
   ``sync_wait_seconds``: the wait for the step already being generated).

Workers need the model on their machine, nothing else from the driver's disk:
the starting adapter (an SFT warm start) is sent as its files. Optional:
:class:`RayRewardSet` scores rewards as parallel Ray tasks.

Seeds: a share's seed depends only on the step's seed and the share's position,
so a retried share samples with the same seed as the lost one, and with one
worker the only share uses the step's seed, exactly like the in-process backend.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from rltk.core.errors import UserError
from rltk.policy import ModelConfig
from rltk.rollouts.config import DistributedConfig
from rltk.rollouts.ray_session import connect
from rltk.rollouts.ray_shares import (check_groups, first_line, fmt_resources, raise_user_error_from_init,
                                      read_adapter_folder, shard_seed, split_contiguous, state_nbytes)
from rltk.rollouts.ray_worker import actor_errors, ray_worker_class
from rltk.rollouts.worker import PromptRequest, RolloutGroup, SamplingConfig

PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
PLACEMENT_TIMEOUT_S = 120.0  # how long to wait for the cluster to fit every worker's bundle
RESTART_TIMEOUT_S = 600.0  # how long a restarted actor may take to rebuild its policy


@dataclass
class _Share:
    slot: int  # which actor
    start: int  # offset in the step's requests
    requests: list[PromptRequest]
    seed: int
    ref: Any  # ObjectRef[list[RolloutGroup]]


@dataclass
class RolloutHandle:
    """One submitted step: the ObjectRefs of its shares, and the adapter version that samples it."""

    requests: list[PromptRequest]
    seed: int
    version: int
    state_ref: Any  # ObjectRef of that version's LoRA tensors (None: the workers' initial adapter)
    shares: list[_Share] = field(default_factory=list)
    preloads: list[tuple[int, Any]] = field(default_factory=list)  # (slot, ref) adapter loads queued before generate

    @property
    def refs(self) -> list[Any]:
        return [s.ref for s in self.shares]


def _check_settings(cfg: DistributedConfig, model: ModelConfig | None, placement: str) -> None:
    if cfg.workers < 1:
        raise UserError(f"distributed.workers must be >= 1 for Ray rollouts, got {cfg.workers}")
    if (model is not None and str(model.device or "").startswith("cuda")) and cfg.num_gpus_per_worker <= 0:
        raise UserError(f"model.device is {model.device!r} but distributed.num_gpus_per_worker is 0: Ray gives the "
                        "rollout workers no GPU (set num_gpus_per_worker, e.g. 0.5, or leave model.device unset)")
    if placement not in PLACEMENT_STRATEGIES:
        raise UserError(f"distributed.placement must be one of {', '.join(PLACEMENT_STRATEGIES)}, "
                        f"got {placement!r}")


class RayRollouts:
    """``cfg.workers`` RolloutWorker actors in a placement group; see the module docstring for the flow.

    Each actor builds its own policy from ``model`` with ``sampling``, starting from ``init_adapter`` (or
    ``model.adapter``), whose files are sent to it;
    ``placement`` is the placement-group strategy; ``worker_cls`` replaces ``RolloutWorker`` (tests).
    Joins or starts Ray through :func:`rltk.rollouts.ray_session.connect` (``cfg.ray_address``).
    """

    def __init__(self, cfg: DistributedConfig, model: ModelConfig, sampling: SamplingConfig, seed: int = 0,
                 init_adapter: str | None = None, placement: str = "PACK", worker_cls: type | None = None):
        from ray.util.placement_group import remove_placement_group

        _check_settings(cfg, model, placement)
        self.cfg = cfg
        self.n = cfg.workers
        self._events: list[str] = []
        self._closed = False
        self._pg = None
        self._actors: list[Any] = []
        # the starting adapter travels as its files (workers may not share the driver's disk); read before Ray starts
        start = init_adapter or (model.adapter if model is not None else None)
        adapter_files = read_adapter_folder(start) if start else None
        if model is not None and model.adapter is not None:
            model = dataclasses.replace(model, adapter=None)
        need_cpus = cfg.workers * cfg.num_cpus_per_worker
        need_gpus = cfg.workers * cfg.num_gpus_per_worker
        # a local instance is sized so that the requested workers fit (the user asked for them)
        self.session = connect(cfg.ray_address, num_cpus=max(float(os.cpu_count() or 1), need_cpus) + 1,
                               num_gpus=need_gpus if need_gpus > 0 else None)
        bundle = {"CPU": float(cfg.num_cpus_per_worker), "GPU": float(cfg.num_gpus_per_worker),
                  **{k: float(v) for k, v in cfg.resources_per_worker.items()}}
        bundle = {k: v for k, v in bundle.items() if v > 0}
        try:
            self._start_actors(bundle, placement, worker_cls, (model, sampling), seed, adapter_files)
        except BaseException:
            self._teardown(remove_placement_group)
            raise
        nodes: dict[str, int] = {}
        for w in self._where:
            nodes[w["node_ip"]] = nodes.get(w["node_ip"], 0) + 1
        where = ", ".join(f"{ip} x{k}" for ip, k in nodes.items())
        ray_kind = "private Ray on loopback" if self.session.local else f"Ray cluster {self.session.address}"
        each = fmt_resources(bundle) if bundle else "no reserved resources"
        self._events.append(f"{self.n} rollout worker(s) up on {where} ({ray_kind}, placement {placement}, each {each})")
        self._version = 0
        self._state_ref: Any = None  # latest synced LoRA tensors in the object store
        self._loaded = [0] * self.n  # adapter version each actor is known to hold
        self._restarts = [0] * self.n
        self._inflight: list[RolloutHandle] = []  # submitted, not yet collected

    def _start_actors(self, bundle: dict[str, float], placement: str, worker_cls: type | None, build: tuple,
                      seed: int, adapter_files: dict[str, bytes] | None) -> None:
        """Reserve a placement group of ``n`` bundles, start one actor in each and wait until every actor has
        built its policy (an error there, such as a bad model spec, surfaces now as one line)."""
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        cfg = self.cfg
        strategy_for: list[Any] = [None] * self.n
        if bundle:
            self._pg = placement_group([dict(bundle) for _ in range(self.n)], strategy=placement)
            try:
                ray.get(self._pg.ready(), timeout=PLACEMENT_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                raise UserError(
                    f"the Ray cluster cannot place {self.n} rollout workers of {bundle} each ({placement}) within "
                    f"{PLACEMENT_TIMEOUT_S:.0f} s; it has {fmt_resources(ray.available_resources())} free "
                    "(lower distributed.workers or the per-worker resources)"
                ) from None
            strategy_for = [PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=i)
                            for i in range(self.n)]
        actor_cls = ray.remote(ray_worker_class(worker_cls))
        for i in range(self.n):
            opts: dict[str, Any] = dict(num_cpus=cfg.num_cpus_per_worker, num_gpus=cfg.num_gpus_per_worker,
                                        max_restarts=cfg.max_restarts, max_task_retries=0)
            if cfg.resources_per_worker:
                opts["resources"] = dict(cfg.resources_per_worker)
            if strategy_for[i] is not None:
                opts["scheduling_strategy"] = strategy_for[i]
            self._actors.append(actor_cls.options(**opts).remote(
                *build, seed=seed, worker_id=f"ray-{i}", adapter_files=adapter_files,
                cores=cfg.worker_cores[i] if cfg.worker_cores else None))
        try:
            self._where = ray.get([a.where.remote() for a in self._actors])
        except ray.exceptions.RayActorError as e:
            raise_user_error_from_init(e)
            raise

    # ------------------------------------------------------------------ protocol

    def submit(self, requests: list[PromptRequest], seed: int) -> RolloutHandle:
        """Start generating a step's prompts on the actors (contiguous shares); returns at once."""
        handle = RolloutHandle(requests=list(requests), seed=seed, version=self._version, state_ref=self._state_ref)
        for slot, actor in enumerate(self._actors):  # an actor that missed a sync (it was restarting) catches up first
            if self._loaded[slot] != self._version and self._state_ref is not None:
                handle.preloads.append((slot, actor.load_adapter_state.remote(self._state_ref, self._version)))
                self._loaded[slot] = self._version
        for slot, (start, end) in enumerate(split_contiguous(len(requests), self.n)):
            share = handle.requests[start:end]
            s = shard_seed(seed, start)
            handle.shares.append(_Share(slot, start, share, s, self._actors[slot].generate.remote(share, s)))
        self._inflight.append(handle)
        return handle

    def collect(self, handle: RolloutHandle) -> list[RolloutGroup]:
        """Wait for every share; regenerate the shares of workers that died; groups in request order."""
        import ray

        errors = actor_errors()
        for slot, ref in handle.preloads:
            try:
                ray.get(ref)
            except errors:
                pass  # the actor died; its generate fails too and is recovered below
        handle.preloads.clear()
        results: list[list[RolloutGroup] | None] = [None] * len(handle.shares)
        pending = {s.ref: k for k, s in enumerate(handle.shares)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            share = handle.shares[k]
            try:
                groups = ray.get(ready[0])
            except errors as e:
                what = f"the rollout of {len(share.requests)} prompt(s)"
                self._recover(share.slot, e, handle.version, handle.state_ref, what=what)
                share.ref = self._actors[share.slot].generate.remote(share.requests, share.seed)
                pending[share.ref] = k
                continue
            check_groups(groups, share.requests, f"rollout worker {share.slot}")
            results[k] = groups
        out = [g for part in results for g in part]  # type: ignore[union-attr]
        check_groups(out, handle.requests, "Ray rollouts")
        self._inflight = [h for h in self._inflight if h is not handle]
        return out

    def sync(self, state: dict[str, torch.Tensor], version: int) -> dict[str, float]:
        """Put the LoRA tensors in the object store once; every actor loads them. Blocks until all hold ``version``."""
        import ray

        errors = actor_errors()
        # Pipelined: the actors may still be generating the next step with the old adapter, and the load queues
        # behind that generation on each actor. Wait for it first (reported as sync_wait_seconds) so that
        # sync_seconds measures the sync alone.
        t_wait = time.perf_counter()
        busy = [r for h in self._inflight for r in h.refs]
        if busy:
            ray.wait(busy, num_returns=len(busy), fetch_local=False)
        t0 = time.perf_counter()
        ref = ray.put(state)
        loads = [a.load_adapter_state.remote(ref, version) for a in self._actors]
        self._version, self._state_ref = version, ref
        for slot, load in enumerate(loads):
            try:
                ray.get(load)
            except errors as e:
                self._recover(slot, e, version, ref, what="an adapter sync")
            self._loaded[slot] = version
        seconds = time.perf_counter() - t0
        return {"sync_bytes": float(state_nbytes(state)), "sync_seconds": seconds, "sync_wait_seconds": t0 - t_wait}

    def events(self) -> list[str]:
        out, self._events = self._events, []
        return out

    def close(self) -> None:
        if self._closed:
            return
        from ray.util.placement_group import remove_placement_group

        self._teardown(remove_placement_group)
        self._closed = True

    def __enter__(self) -> "RayRollouts":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ introspection (events, tests, benchmarks)

    def worker_info(self) -> list[dict[str, Any]]:
        """``pid``, ``node_id``, ``node_ip``, ``threads`` of each actor (asks them now)."""
        import ray

        self._where = ray.get([a.where.remote() for a in self._actors])
        return [dict(w, worker=i, restarts=self._restarts[i]) for i, w in enumerate(self._where)]

    def policy_versions(self) -> list[int]:
        import ray

        return ray.get([a.policy_version.remote() for a in self._actors])

    @property
    def restarts(self) -> list[int]:
        return list(self._restarts)

    # ------------------------------------------------------------------ internals

    def _recover(self, slot: int, err: BaseException, version: int, state_ref: Any, what: str) -> None:
        """Wait until Ray has restarted actor ``slot``, give it adapter ``version`` again, record the event."""
        import ray
        from ray import exceptions as rex

        old = self._where[slot]
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        while True:
            try:
                where = ray.get(self._actors[slot].where.remote(), timeout=max(1.0, deadline - time.monotonic()))
                break
            except (rex.ActorUnavailableError, rex.GetTimeoutError) as e:  # still restarting
                if time.monotonic() > deadline:
                    raise UserError(f"rollout worker {slot} (pid {old['pid']} on {old['node_ip']}) died and did not "
                                    f"come back within {RESTART_TIMEOUT_S:.0f} s: {first_line(err)}") from e
                time.sleep(0.2)
            except rex.ActorDiedError as dead:
                raise UserError(
                    f"rollout worker {slot} (pid {old['pid']} on {old['node_ip']}) died and Ray has no restarts left "
                    f"(distributed.max_restarts={self.cfg.max_restarts}, {self._restarts[slot]} used): "
                    f"{first_line(err)}; stopping — the last checkpoint is intact, resume from it "
                    "(more max_restarts, or more memory per worker if it was killed for memory)"
                ) from dead
        restarted = where["pid"] != old["pid"] or where["node_id"] != old["node_id"]
        if restarted:
            self._restarts[slot] += 1
        if state_ref is not None:  # a restarted actor holds only its initial adapter (version 0)
            ray.get(self._actors[slot].load_adapter_state.remote(state_ref, version))
        self._loaded[slot] = version if state_ref is not None else 0
        self._where[slot] = where
        self._events.append(
            f"rollout worker {slot} {'restarted' if restarted else 'was unreachable'} during {what} "
            f"({type(err).__name__}): pid {old['pid']}@{old['node_ip']} -> pid {where['pid']}@{where['node_ip']}, "
            f"restart {self._restarts[slot]}/{self.cfg.max_restarts}; adapter v{version} re-sent, work redone"
        )

    def _teardown(self, remove_placement_group: Any) -> None:
        import ray

        if ray.is_initialized():
            for a in self._actors:
                try:
                    ray.kill(a, no_restart=True)
                except Exception:  # already gone
                    pass
            if self._pg is not None:
                try:
                    remove_placement_group(self._pg)
                except Exception:
                    pass
        self._actors = []
        self._pg = None
        if getattr(self, "session", None) is not None:
            self.session.close()
