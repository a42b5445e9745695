"""Run folders: where a run writes its config, logs, checkpoints and adapter."""

from __future__ import annotations

import time
from pathlib import Path


def default_run_dir(kind: str) -> Path:
    """``runs/KIND-YYYYmmdd-HHMMSS`` (the folder a run uses when its config names none)."""
    return Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


__all__ = ["default_run_dir"]
