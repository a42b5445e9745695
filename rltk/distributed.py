"""Rollouts on Ray: N ``RolloutWorker`` actors, adapter-only weight sync, surviving worker loss.

The GRPO loop talks to a *rollout backend* (``submit`` → ``collect``, ``sync``,
``events``, ``close``; see ``rltk.grpo.RolloutBackend``). :func:`make_backend`
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

>>> split_contiguous(7, 3)
[(0, 3), (3, 5), (5, 7)]
>>> split_contiguous(2, 4)
[(0, 1), (1, 2)]
>>> shard_seed(11, 0)
11
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from rltk.core.errors import UserError

if TYPE_CHECKING:  # the engine's types; imported lazily at run time (rltk.grpo imports this module)
    import torch

    from rltk.grpo import DistributedConfig
    from rltk.models import ModelConfig, Policy
    from rltk.rollouts import PromptRequest, RolloutGroup, SamplingConfig

PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
PLACEMENT_TIMEOUT_S = 120.0  # how long to wait for the cluster to fit every worker's bundle
RESTART_TIMEOUT_S = 600.0  # how long a restarted actor may take to rebuild its policy


# ----------------------------------------------------------------------------- pure helpers


def split_contiguous(n: int, parts: int) -> list[tuple[int, int]]:
    """``[start, end)`` of at most ``parts`` contiguous, non-empty shares of ``n`` items (earlier ones get the rest)."""
    if parts <= 0:
        raise ValueError(f"parts must be positive, got {parts}")
    base, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        end = start + base + (1 if k < extra else 0)
        if end > start:
            out.append((start, end))
        start = end
    return out


def shard_seed(step_seed: int, offset: int) -> int:
    """Seed for the share that starts at ``offset`` of a step's requests: the step seed for the first share."""
    if offset == 0:
        return int(step_seed)
    return int(np.random.SeedSequence([int(step_seed) & (2**63 - 1), int(offset)]).generate_state(1, np.uint32)[0])


def state_nbytes(state: dict[str, "torch.Tensor"]) -> int:
    """Bytes of a tensor dict (what one weight sync moves)."""
    return sum(t.numel() * t.element_size() for t in state.values())


def check_groups(groups: Sequence["RolloutGroup"], requests: Sequence["PromptRequest"], who: str) -> None:
    """Exactly one group per request, in request order; anything else is a bug in the worker, never silently fixed."""
    got = [g.index for g in groups]
    want = [r.index for r in requests]
    if got != want:
        raise RuntimeError(f"{who} returned groups for prompts {got[:8]}... but was asked for {want[:8]}... "
                           f"({len(got)} groups for {len(want)} requests)")


def copy_adapter_state(model: Any, state: dict[str, "torch.Tensor"]) -> None:
    """Copy LoRA tensors (keys as ``rltk.models.trainable_state`` gives them) into the adapter's parameters in place.

    peft's ``set_peft_model_state_dict`` first builds the whole model's ``state_dict`` to remap names; on a 4-bit
    base on CPU that unpacks every quantized weight (measured 1-2 s per sync on SmolLM2-135M after the first
    generation, against ~10 ms here). This touches the adapter tensors only and refuses a partial or foreign state.
    """
    import torch

    adapter = getattr(model, "active_adapter", "default")
    adapter = adapter[0] if isinstance(adapter, (list, tuple)) else adapter
    params = {name.replace(f".{adapter}.", "."): p for name, p in model.named_parameters() if "lora_" in name}
    missing, unexpected = params.keys() - state.keys(), state.keys() - params.keys()
    if missing or unexpected:
        raise ValueError(f"adapter state does not match the model's LoRA parameters: {len(missing)} missing "
                         f"(e.g. {sorted(missing)[:2]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:2]})")
    with torch.no_grad():
        for key, p in params.items():
            if p.shape != state[key].shape:
                raise ValueError(f"adapter tensor {key} has shape {tuple(state[key].shape)}, "
                                 f"the model's {tuple(p.shape)}")
            p.copy_(state[key])


def _actor_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean 'the worker (or its node) went away', as opposed to a bug in generate."""
    from ray import exceptions as rex

    return (rex.RayActorError, rex.OutOfMemoryError, rex.ObjectLostError, rex.NodeDiedError, rex.WorkerCrashedError)


# ----------------------------------------------------------------------------- the actor class


ADAPTER_FILES_MAX_BYTES = 2**30  # a LoRA adapter folder is MBs; refuse to ship something that is clearly not one


def read_adapter_folder(path: str) -> dict[str, bytes]:
    """The files of a peft adapter folder (top level only), to ship to workers that may not share the driver's disk."""
    from pathlib import Path

    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise UserError(f"adapter folder {path} has no adapter_config.json")
    files = {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}
    size = sum(len(b) for b in files.values())
    if size > ADAPTER_FILES_MAX_BYTES:
        raise UserError(f"adapter folder {path} holds {size / 2**20:.0f} MiB of files; expected a LoRA adapter")
    return files


def _ray_worker_class(base: type | None = None) -> type:
    """``RolloutWorker`` (or ``base``) as an actor:

    * the starting adapter arrives as the folder's files (``adapter_files``) and is written to a local temporary
      folder, so workers on other machines need no shared disk with the driver;
    * adapters load through :func:`copy_adapter_state` (the fast path for 4-bit CPU bases);
    * ``where()`` reports the actor's pid and node (for events and tests).
    """
    if base is None:
        from rltk.rollouts import RolloutWorker as base

    class RayRolloutWorker(base):  # type: ignore[misc, valid-type]
        def __init__(self, model: Any, sampling: Any, seed: int = 0, worker_id: str = "ray",
                     adapter_files: dict[str, bytes] | None = None):
            import shutil
            import tempfile
            from pathlib import Path

            self.adapter_source = None
            if adapter_files:
                folder = Path(tempfile.mkdtemp(prefix="rltk-adapter-"))
                try:
                    for name, data in adapter_files.items():
                        (folder / name).write_bytes(data)
                    super().__init__(model, sampling, seed=seed, init_adapter=str(folder), worker_id=worker_id)
                finally:  # the weights are in memory now
                    shutil.rmtree(folder, ignore_errors=True)
                self.adapter_source = str(folder)
            else:
                super().__init__(model, sampling, seed=seed, init_adapter=None, worker_id=worker_id)

        def load_adapter_state(self, state: dict[str, torch.Tensor], version: int) -> None:
            copy_adapter_state(self.policy.model, state)  # as the base method does, without peft's full state_dict
            self.set_version(version)

        def where(self) -> dict[str, Any]:
            import ray

            import torch

            ctx = ray.get_runtime_context()
            return {"pid": os.getpid(), "node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                    "threads": torch.get_num_threads(), "adapter_source": self.adapter_source}

    RayRolloutWorker.__qualname__ = RayRolloutWorker.__name__ = "RayRolloutWorker"
    return RayRolloutWorker


# ----------------------------------------------------------------------------- backend


@dataclass
class _Share:
    slot: int  # which actor
    start: int  # offset in the step's requests
    requests: list["PromptRequest"]
    seed: int
    ref: Any  # ObjectRef[list[RolloutGroup]]


@dataclass
class RolloutHandle:
    """One submitted step: the ObjectRefs of its shares, and the adapter version that samples it."""

    requests: list["PromptRequest"]
    seed: int
    version: int
    state_ref: Any  # ObjectRef of that version's LoRA tensors (None: the workers' initial adapter)
    shares: list[_Share] = field(default_factory=list)
    preloads: list[tuple[int, Any]] = field(default_factory=list)  # (slot, ref) adapter loads queued before generate

    @property
    def refs(self) -> list[Any]:
        return [s.ref for s in self.shares]


class RayRollouts:
    """``cfg.workers`` RolloutWorker actors in a placement group; see the module docstring for the flow.

    Each actor builds its own policy from ``model`` with ``sampling``, starting from ``init_adapter`` (or
    ``model.adapter``), whose files are sent to it;
    ``placement`` is the placement-group strategy; ``worker_cls`` replaces ``RolloutWorker`` (tests).
    Joins or starts Ray through :func:`rltk.ray_utils.connect` (``cfg.ray_address``).
    """

    def __init__(self, cfg: "DistributedConfig", model: "ModelConfig", sampling: "SamplingConfig", seed: int = 0,
                 init_adapter: str | None = None, placement: str = "PACK", worker_cls: type | None = None):
        import ray
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from rltk.ray_utils import connect

        if cfg.workers < 1:
            raise UserError(f"distributed.workers must be >= 1 for Ray rollouts, got {cfg.workers}")
        if (model is not None and str(model.device or "").startswith("cuda")) and cfg.num_gpus_per_worker <= 0:
            raise UserError(f"model.device is {model.device!r} but distributed.num_gpus_per_worker is 0: Ray gives the "
                            "rollout workers no GPU (set num_gpus_per_worker, e.g. 0.5, or leave model.device unset)")
        if placement not in PLACEMENT_STRATEGIES:
            raise UserError(f"distributed.placement must be one of {', '.join(PLACEMENT_STRATEGIES)}, "
                            f"got {placement!r}")
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
        try:
            bundle = {"CPU": float(cfg.num_cpus_per_worker), "GPU": float(cfg.num_gpus_per_worker),
                      **{k: float(v) for k, v in cfg.resources_per_worker.items()}}
            bundle = {k: v for k, v in bundle.items() if v > 0}
            strategy_for: list[Any] = [None] * self.n
            if bundle:
                self._pg = placement_group([dict(bundle) for _ in range(self.n)], strategy=placement)
                try:
                    ray.get(self._pg.ready(), timeout=PLACEMENT_TIMEOUT_S)
                except ray.exceptions.GetTimeoutError:
                    raise UserError(
                        f"the Ray cluster cannot place {self.n} rollout workers of {bundle} each ({placement}) within "
                        f"{PLACEMENT_TIMEOUT_S:.0f} s; it has {_fmt_resources(ray.available_resources())} free "
                        "(lower distributed.workers or the per-worker resources)"
                    ) from None
                strategy_for = [PlacementGroupSchedulingStrategy(self._pg, placement_group_bundle_index=i)
                                for i in range(self.n)]
            actor_cls = ray.remote(_ray_worker_class(worker_cls))
            for i in range(self.n):
                opts: dict[str, Any] = dict(num_cpus=cfg.num_cpus_per_worker, num_gpus=cfg.num_gpus_per_worker,
                                            max_restarts=cfg.max_restarts, max_task_retries=0)
                if cfg.resources_per_worker:
                    opts["resources"] = dict(cfg.resources_per_worker)
                if strategy_for[i] is not None:
                    opts["scheduling_strategy"] = strategy_for[i]
                self._actors.append(actor_cls.options(**opts).remote(
                    model, sampling, seed=seed, worker_id=f"ray-{i}", adapter_files=adapter_files))
            # wait for every actor to build its policy; an error there (bad model spec) surfaces now
            try:
                self._where = ray.get([a.where.remote() for a in self._actors])
            except ray.exceptions.RayActorError as e:
                _raise_user_error_from_init(e)
                raise
        except BaseException:
            self._teardown(remove_placement_group)
            raise
        nodes: dict[str, int] = {}
        for w in self._where:
            nodes[w["node_ip"]] = nodes.get(w["node_ip"], 0) + 1
        where = ", ".join(f"{ip} x{k}" for ip, k in nodes.items())
        ray_kind = "private Ray on loopback" if self.session.local else f"Ray cluster {self.session.address}"
        each = _fmt_resources(bundle) if bundle else "no reserved resources"
        self._events.append(f"{self.n} rollout worker(s) up on {where} ({ray_kind}, placement {placement}, each {each})")
        self._version = 0
        self._state_ref: Any = None  # latest synced LoRA tensors in the object store
        self._loaded = [0] * self.n  # adapter version each actor is known to hold
        self._restarts = [0] * self.n
        self._inflight: list[RolloutHandle] = []  # submitted, not yet collected

    # ------------------------------------------------------------------ protocol

    def submit(self, requests: list["PromptRequest"], seed: int) -> RolloutHandle:
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

    def collect(self, handle: RolloutHandle) -> list["RolloutGroup"]:
        """Wait for every share; regenerate the shares of workers that died; groups in request order."""
        import ray

        errors = _actor_errors()
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

    def sync(self, state: dict[str, "torch.Tensor"], version: int) -> dict[str, float]:
        """Put the LoRA tensors in the object store once; every actor loads them. Blocks until all hold ``version``."""
        import ray

        errors = _actor_errors()
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
                                    f"come back within {RESTART_TIMEOUT_S:.0f} s: {_first_line(err)}") from e
                time.sleep(0.2)
            except rex.ActorDiedError as dead:
                raise UserError(
                    f"rollout worker {slot} (pid {old['pid']} on {old['node_ip']}) died and Ray has no restarts left "
                    f"(distributed.max_restarts={self.cfg.max_restarts}, {self._restarts[slot]} used): "
                    f"{_first_line(err)}; stopping — the last checkpoint is intact, resume from it "
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


def _raise_user_error_from_init(e: BaseException) -> None:
    """An actor whose constructor raised UserError (a bad model spec, a missing adapter) reports it as one line."""
    if not getattr(e, "actor_init_failed", False):
        return
    prefix = f"{UserError.__module__}.{UserError.__qualname__}: "
    for line in reversed(str(getattr(e, "error_msg", "") or e).splitlines()):
        if line.startswith(prefix):
            raise UserError(f"a rollout worker could not start: {line[len(prefix):]}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _fmt_resources(res: dict[str, float]) -> str:
    skip = ("node:", "memory", "object_store_memory", "accelerator_type")
    keep = {k: v for k, v in res.items() if not k.startswith(skip)}
    return ", ".join(f"{k}={v:g}" for k, v in sorted(keep.items())) or "nothing"


# ----------------------------------------------------------------------------- rewards as Ray tasks

REWARD_TASK_CPUS = 0.5  # rewards are light; a fraction keeps them schedulable beside the rollout workers


def _score_share(reward_args: tuple, completions: list, columns: dict[str, Any]) -> Any:
    """Ray task body: score one share with a RewardSet built from the same specs (same time limits, same sandbox)."""
    from rewards import RewardSet

    specs, timeout_s, fallback, processes = reward_args
    return RewardSet(specs, timeout_s=timeout_s, fallback=fallback, processes=processes).score(completions, **columns)


def merge_scores(parts: Sequence[Any], offsets: Sequence[int]) -> Any:
    """Join the RewardScores of contiguous shares (starting at ``offsets``) into one, as if scored at once.

    Totals and components concatenate, failures add up, seconds are the slowest share's (the shares ran in
    parallel), error messages keep their sample numbers relative to the whole batch.
    """
    import re

    from rewards import RewardScores

    first = parts[0]
    labels = list(first.components)
    errors: dict[str, list[str]] = {k: [] for k in labels}
    for part, off in zip(parts, offsets):
        for k in labels:
            errors[k] += [re.sub(r"^sample (\d+):", lambda m: f"sample {int(m.group(1)) + off}:", e)
                          for e in part.errors.get(k, [])]
    return RewardScores(
        total=[t for p in parts for t in p.total],
        components={k: [v for p in parts for v in p.components[k]] for k in labels},
        failures={k: sum(p.failures[k] for p in parts) for k in labels},
        seconds={k: max(p.seconds[k] for p in parts) for k in labels},
        errors=errors,
    )


class RayRewardSet:
    """A ``RewardSet`` whose ``score`` runs as parallel Ray tasks, one per contiguous share of the completions.

    Each task scores its share with a RewardSet built from the same specs, so every sample keeps the same
    time limit, fallback and sandbox as in-process scoring, and the result is the same ``RewardScores``.
    Built here as well, to validate the specs and answer ``labels`` / ``required_columns`` / ``check_columns``.
    """

    def __init__(self, specs: Sequence[Any], timeout_s: float = 5.0, fallback: float | None = None,
                 processes: int = 0, shares: int = 2):
        import ray

        from rewards import RewardSet

        if not ray.is_initialized():
            raise RuntimeError("RayRewardSet needs Ray running (create the Ray rollout backend first)")
        self.local = RewardSet(specs, timeout_s=timeout_s, fallback=fallback, processes=processes)
        self.labels = self.local.labels
        self.shares = max(1, int(shares))
        self._args = (list(specs), timeout_s, fallback, processes)
        self._task = ray.remote(num_cpus=REWARD_TASK_CPUS, max_retries=1)(_score_share)

    def required_columns(self) -> set[str]:
        return self.local.required_columns()

    def check_columns(self, columns: Any, where: str) -> None:
        self.local.check_columns(columns, where)

    def score(self, completions: list, **columns: Any) -> Any:
        import ray

        n = len(completions)
        self.local.check_columns(columns, "score")  # before any task starts
        shares = split_contiguous(n, self.shares)
        if len(shares) <= 1:
            return self.local.score(completions, **columns)
        args_ref = ray.put(self._args)
        refs = []
        for a, b in shares:
            cols = {k: (v[a:b] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in columns.items()}
            refs.append(self._task.remote(args_ref, list(completions[a:b]), cols))
        return merge_scores(ray.get(refs), [a for a, _ in shares])


# ----------------------------------------------------------------------------- factory


def make_backend(cfg: "DistributedConfig", model: "ModelConfig", sampling: "SamplingConfig", seed: int,
                 init_adapter: str | None, policy: "Policy | None" = None) -> Any:
    """The rollout backend for ``cfg``: in-process ``LocalRollouts`` (``workers=0``, no Ray) or :class:`RayRollouts`.

    ``policy`` is the learner's policy, which the in-process worker shares (unused with Ray: actors load their own).
    """
    if cfg.workers < 0:
        raise UserError(f"distributed.workers must be >= 0, got {cfg.workers}")
    if cfg.workers == 0:
        from rltk.grpo import LocalRollouts
        from rltk.rollouts import RolloutWorker

        return LocalRollouts(RolloutWorker(model, sampling, seed=seed, init_adapter=init_adapter, policy=policy))
    return RayRollouts(cfg, model, sampling, seed=seed, init_adapter=init_adapter, placement=cfg.placement)


__all__ = [
    "ADAPTER_FILES_MAX_BYTES",
    "RayRewardSet",
    "RayRollouts",
    "RolloutHandle",
    "check_groups",
    "copy_adapter_state",
    "make_backend",
    "merge_scores",
    "read_adapter_folder",
    "shard_seed",
    "split_contiguous",
    "state_nbytes",
]
