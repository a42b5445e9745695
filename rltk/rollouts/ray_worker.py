"""``RolloutWorker`` as a Ray actor: the starting adapter arrives as files, later adapters as LoRA
tensors copied in place (no peft state-dict round trip), and ``where()`` says which process and node it is."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from rltk.rollouts.worker import RolloutWorker


def copy_adapter_state(model: Any, state: dict[str, "torch.Tensor"]) -> None:
    """Copy LoRA tensors (keys as ``rltk.models.trainable_state`` gives them) into the adapter's parameters in place.

    peft's ``set_peft_model_state_dict`` first builds the whole model's ``state_dict`` to remap names; on a 4-bit
    base on CPU that unpacks every quantized weight (measured 1-2 s per sync on SmolLM2-135M after the first
    generation, against ~10 ms here). This touches the adapter tensors only and refuses a partial or foreign state.
    """
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


def actor_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean 'the worker (or its node) went away', as opposed to a bug in generate."""
    from ray import exceptions as rex

    return (rex.RayActorError, rex.OutOfMemoryError, rex.ObjectLostError, rex.NodeDiedError, rex.WorkerCrashedError)


def ray_worker_class(base: type | None = None) -> type:
    """``RolloutWorker`` (or ``base``) as an actor:

    * the starting adapter arrives as the folder's files (``adapter_files``) and is written to a local temporary
      folder, so workers on other machines need no shared disk with the driver;
    * adapters load through :func:`copy_adapter_state` (the fast path for 4-bit CPU bases);
    * ``where()`` reports the actor's pid and node (for events and tests).
    """
    base = RolloutWorker if base is None else base

    class RayRolloutWorker(base):  # type: ignore[misc, valid-type]
        def __init__(self, model: Any, sampling: Any, seed: int = 0, worker_id: str = "ray",
                     adapter_files: dict[str, bytes] | None = None):
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

            ctx = ray.get_runtime_context()
            return {"pid": os.getpid(), "node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                    "threads": torch.get_num_threads(), "adapter_source": self.adapter_source}

    RayRolloutWorker.__qualname__ = RayRolloutWorker.__name__ = "RayRolloutWorker"
    return RayRolloutWorker
