"""``RolloutWorker`` as a Ray actor: the starting adapter arrives as files, later adapters as LoRA
tensors copied in place (:func:`rltk.policy.adapters.load_trainable_state`), and ``where()`` says which
process and node it is."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from rltk.policy.adapters import load_trainable_state
from rltk.rollouts.cores import pin_process
from rltk.rollouts.worker import RolloutWorker


def actor_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean 'the worker (or its node) went away', as opposed to a bug in generate."""
    from ray import exceptions as rex

    return (rex.RayActorError, rex.OutOfMemoryError, rex.ObjectLostError, rex.NodeDiedError, rex.WorkerCrashedError)


def ray_worker_class(base: type | None = None) -> type:
    """``RolloutWorker`` (or ``base``) as an actor:

    * the starting adapter arrives as the folder's files (``adapter_files``) and is written to a local temporary
      folder, so workers on other machines need no shared disk with the driver;
    * a new adapter refreshes the dense sampling copy only when its version differs from the one held;
    * ``cores`` (``distributed.worker_cores[i]``) pins the actor's process to that core set before it builds anything;
    * ``where()`` reports the actor's pid and node (for events and tests).
    """
    base = RolloutWorker if base is None else base

    class RayRolloutWorker(base):  # type: ignore[misc, valid-type]
        def __init__(self, model: Any, sampling: Any, seed: int = 0, worker_id: str = "ray",
                     adapter_files: dict[str, bytes] | None = None, cores: list[int] | None = None):
            self.adapter_source = None
            if cores is not None:
                pin_process(cores, f"distributed.worker_cores of {worker_id}")
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
            load_trainable_state(self.policy.model, state)
            self.set_version(version)  # the dense copy is rebuilt when the version moves

        def where(self) -> dict[str, Any]:
            import ray

            ctx = ray.get_runtime_context()
            return {"pid": os.getpid(), "node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                    "threads": torch.get_num_threads(), "adapter_source": self.adapter_source,
                    "cores": sorted(os.sched_getaffinity(0))}

    RayRolloutWorker.__qualname__ = RayRolloutWorker.__name__ = "RayRolloutWorker"
    return RayRolloutWorker
