"""The ``distributed:`` section: where rollouts run (in-process, or Ray actors) and with what resources."""

from __future__ import annotations

from dataclasses import dataclass, field

from rltk.core.config import check_range


@dataclass(frozen=True)
class DistributedConfig:
    """Where rollouts run (see :mod:`rltk.rollouts.ray_rollouts`)."""

    workers: int = 0  # 0 = everything in one process, no Ray
    ray_address: str | None = None  # None: start a local Ray bound to loopback; "auto" or "HOST:PORT": join a cluster
    pipeline: bool = False  # one-step-off-policy: generate step t+1 while the learner updates on step t
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0
    resources_per_worker: dict[str, float] = field(default_factory=dict)
    max_restarts: int = 3
    reward_tasks: bool = False  # score rewards as parallel Ray tasks, one share per worker (needs workers >= 1)
    placement: str = "PACK"  # Ray placement-group strategy for the workers
    learner_cores: list[int] | None = None  # pin the learner (the driver) to these cores during training
    worker_cores: list[list[int]] | None = None  # pin worker i to worker_cores[i] (a core set on its node)

    def __post_init__(self) -> None:
        check_range("workers", self.workers, low=0)
        check_range("num_cpus_per_worker", self.num_cpus_per_worker, low=0)
        check_range("num_gpus_per_worker", self.num_gpus_per_worker, low=0)
        check_range("max_restarts", self.max_restarts, low=0)
        if self.placement not in ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"):
            raise ValueError(f"placement must be PACK, SPREAD, STRICT_PACK or STRICT_SPREAD, got {self.placement!r}")
        if self.reward_tasks and self.workers < 1:
            raise ValueError("reward_tasks: true needs Ray rollout workers (workers >= 1)")
        if self.worker_cores is not None and len(self.worker_cores) != self.workers:
            raise ValueError(f"worker_cores needs one core list per worker ({self.workers}), got {len(self.worker_cores)}")
        for name, sets in (("learner_cores", [self.learner_cores]), ("worker_cores", self.worker_cores or [])):
            for cores in sets:
                if cores is not None and (not cores or min(cores) < 0):
                    raise ValueError(f"{name}: a core list must be non-empty core numbers >= 0, got {cores}")
