"""Checkpoints: everything a run needs to continue exactly where it stopped, written atomically.

A checkpoint is a folder ``RUN_DIR/checkpoints/step-000010/`` with

* ``adapter/`` — the LoRA adapter in peft format (``PeftModel.from_pretrained``-loadable), with its tokenizer;
* ``state.pt`` — optimizer state, adapter version, step, data cursor, RNG states (python, numpy,
  torch), and whatever else the caller puts in ``extra``;
* copies of the run's ``metrics.jsonl`` / ``samples.jsonl`` as they were at that step, so a
  resumed run's logs hold no line from the steps it redoes.

It is written to a temporary folder beside it and renamed into place, so a run killed while
saving leaves the previous checkpoint intact and at worst a ``.tmp-*`` folder that is ignored
(and cleaned up by the next save). Only the last ``keep`` checkpoints are kept.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from peft.utils import load_peft_weights

from rltk.core.errors import UserError
from rltk.core.seeds import capture_rng
from rltk.policy import Policy, load_trainable_state, save_adapter

STEP_DIR = re.compile(r"^step-(\d{6,})$")
LOG_FILES = ("metrics.jsonl", "samples.jsonl")


@dataclass
class Checkpoint:
    path: Path
    step: int  # steps completed
    cursor: int  # data stream position of the next prompt
    learner: dict[str, Any]  # Learner.state_dict()
    rng: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter_dir(self) -> Path:
        return self.path / "adapter"


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_step(path: str | Path) -> int:
    """The step a checkpoint folder (``step-000010``) was saved at."""
    m = STEP_DIR.match(Path(path).name)
    if m is None:
        raise ValueError(f"{path} is not a checkpoint folder (step-NNNNNN)")
    return int(m.group(1))


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders of an interrupted save are skipped)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [(checkpoint_step(p), p) for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name)
             and (p / "state.pt").is_file()]
    return [p for _, p in sorted(found)]


def save_checkpoint(run_dir: str | Path, step: int, policy: Policy, learner_state: dict[str, Any], cursor: int,
                    keep: int = 3, extra: dict[str, Any] | None = None, prompt: dict[str, Any] | None = None) -> Path:
    """Write checkpoint ``step`` atomically; keep the newest ``keep`` (0 = all)."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a run killed while saving
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        save_adapter(policy, tmp / "adapter", prompt)
        torch.save({"step": step, "cursor": cursor, "learner": learner_state, "rng": capture_rng(),
                    "extra": extra or {}}, tmp / "state.pt")
        for name in LOG_FILES:
            src = Path(run_dir) / name
            if src.is_file():
                shutil.copy2(src, tmp / name)
        _fsync_tree(tmp)
        if final.exists():  # the same step saved again (a resumed run): swap, then drop the old one
            old = root / f".tmp-old-{final.name}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_tree(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def load_checkpoint(path: str | Path) -> Checkpoint:
    """A checkpoint folder, checked whole: its state and its adapter's tensors must read back.
    UserError naming the folder and what is wrong (a truncated or missing file)."""
    p = Path(path)
    if not (p / "state.pt").is_file():
        raise UserError(f"{path} is not a checkpoint (no state.pt)")
    try:
        state = torch.load(p / "state.pt", weights_only=False)
        ckpt = Checkpoint(p, int(state["step"]), int(state["cursor"]), state["learner"], state["rng"],
                          state.get("extra", {}))
        if not (p / "adapter" / "adapter_config.json").is_file():
            raise FileNotFoundError("adapter/adapter_config.json is missing")
        load_peft_weights(str(p / "adapter"), device="cpu")  # a truncated adapter file fails here, not mid-resume
    except Exception as e:  # noqa: BLE001  (torch/safetensors raise many types for a damaged file)
        raise UserError(f"checkpoint {p} is damaged: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    return ckpt


def latest_checkpoint(run_dir: str | Path, warn: Callable[[str], None] | None = None) -> Checkpoint:
    """The newest intact checkpoint of ``run_dir``: a damaged newer one is skipped with a one-line warning
    (``warn``, default: stderr) naming it. UserError when there is none."""
    if not Path(run_dir).is_dir():
        raise UserError(f"--resume: run folder {run_dir} does not exist")
    found = list_checkpoints(run_dir)
    if not found:
        raise UserError(f"--resume: {run_dir} has no complete checkpoint under checkpoints/ (nothing to resume)")
    say = warn or (lambda text: print(text, file=sys.stderr))
    for path in reversed(found):
        try:
            return load_checkpoint(path)
        except UserError as e:
            say(f"rltk: warning: {e}; skipping it")
    raise UserError(f"--resume: every checkpoint of {run_dir} is damaged ({len(found)} tried); nothing to resume")


def load_adapter_into(model: Any, adapter_dir: str | Path) -> None:
    """Load a saved peft adapter's tensors into ``model``'s (same-shaped) LoRA parameters."""
    load_trainable_state(model, load_peft_weights(str(adapter_dir), device="cpu"))


def restore_logs(ckpt: Checkpoint, run_dir: str | Path) -> None:
    """Put the run's log files back as they were at the checkpoint (drops lines of the redone steps)."""
    for name in LOG_FILES:
        src, dst = ckpt.path / name, Path(run_dir) / name
        if src.is_file():
            shutil.copy2(src, dst)
        elif dst.exists():
            dst.unlink()


__all__ = [
    "Checkpoint",
    "checkpoint_root",
    "latest_checkpoint",
    "list_checkpoints",
    "load_adapter_into",
    "load_checkpoint",
    "restore_logs",
    "save_checkpoint",
]
