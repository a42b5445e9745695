"""Rollout backends: what the GRPO loop talks to (``submit`` -> ``collect``, ``sync``, ``events``, ``close``).

:func:`make_backend` is the one place that picks one: the in-process :class:`LocalRollouts` for
``distributed.workers = 0`` (no Ray at all), :class:`rltk.rollouts.ray_rollouts.RayRollouts` for ``>= 1``.
Both run the same :class:`rltk.rollouts.worker.RolloutWorker`.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from rltk.core.errors import UserError
from rltk.policy import ModelConfig, Policy
from rltk.rollouts.config import DistributedConfig
from rltk.rollouts.ray_rollouts import RayRollouts
from rltk.rollouts.worker import PromptRequest, RolloutGroup, RolloutWorker, SamplingConfig


class RolloutBackend(Protocol):
    def submit(self, requests: list[PromptRequest], seed: int) -> Any: ...
    def collect(self, handle: Any) -> list[RolloutGroup]: ...
    def sync(self, state: dict[str, torch.Tensor], version: int) -> dict[str, float]: ...
    def events(self) -> list[str]: ...
    def close(self) -> None: ...


class LocalRollouts:
    """In-process backend: one :class:`RolloutWorker` sharing the learner's model; ``submit`` runs at once."""

    shares_model = True  # the loop need not copy the adapter out to sync it

    def __init__(self, worker: RolloutWorker):
        self.worker = worker

    def submit(self, requests: list[PromptRequest], seed: int) -> list[RolloutGroup]:
        return self.worker.generate(requests, seed)

    def collect(self, handle: list[RolloutGroup]) -> list[RolloutGroup]:
        return handle

    def sync(self, state: dict[str, torch.Tensor], version: int) -> dict[str, float]:
        self.worker.set_version(version)  # the shared model already holds the new adapter
        return {"sync_bytes": 0.0, "sync_seconds": 0.0}

    def events(self) -> list[str]:
        return []

    def close(self) -> None:
        return None



def make_backend(cfg: DistributedConfig, model: ModelConfig, sampling: SamplingConfig, seed: int,
                 init_adapter: str | None, policy: Policy | None = None) -> Any:
    """The rollout backend for ``cfg``: in-process ``LocalRollouts`` (``workers=0``, no Ray) or :class:`RayRollouts`.

    ``policy`` is the learner's policy, which the in-process worker shares (unused with Ray: actors load their own).
    """
    if cfg.workers < 0:
        raise UserError(f"distributed.workers must be >= 0, got {cfg.workers}")
    if cfg.workers == 0:
        return LocalRollouts(RolloutWorker(model, sampling, seed=seed, init_adapter=init_adapter, policy=policy))
    return RayRollouts(cfg, model, sampling, seed=seed, init_adapter=init_adapter, placement=cfg.placement)
