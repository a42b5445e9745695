"""The ``distributed:`` section: where rollouts run (in-process, or Ray actors) and with what resources."""

from __future__ import annotations

from dataclasses import dataclass, field


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

    def __post_init__(self) -> None:
        if self.reward_tasks and self.workers < 1:
            raise ValueError("reward_tasks: true needs Ray rollout workers (workers >= 1)")
