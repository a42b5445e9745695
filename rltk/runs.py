"""Run folders: a fresh run gets a folder of its own; a resumed run continues only the run it was.

* :func:`claim_run_dir` — a new run's folder, created now. A named folder (``run_dir:``) must be absent
  or empty: a folder that holds another run's files is refused (resume it, or name another), so nothing
  of the old run is lost. Unnamed runs get ``runs/KIND-YYYYmmdd-HHMMSS``, created exclusively, with a
  ``-2``, ``-3`` ... suffix when another run took that name in the same second.
* :func:`check_resume` — the config a resumed run brings must match the one in ``config.yaml`` except for
  keys that are safe to change (:data:`SAFE_TO_CHANGE`); other changes are refused, naming the keys.
* :func:`write_config` / :func:`record_resume` — ``config.yaml`` holds the config in force; each resume
  appends a comment line to it (YAML comments: the file still loads as a config) saying when, at which
  step and what changed.

>>> flat = flatten({"grpo": {"steps": 30, "lr": 1e-5}, "seed": 0})
>>> flat == {"grpo.steps": 30, "grpo.lr": 1e-5, "seed": 0}
True
>>> is_safe_change("grpo.steps"), is_safe_change("log.live"), is_safe_change("grpo.lr")
(True, True, False)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from rltk.core.errors import UserError

# keys a resumed run may change: how long it runs, how it logs and checkpoints, where rollouts run
SAFE_TO_CHANGE = ("grpo.steps", "sft.steps", "log.", "checkpoint.", "distributed.", "reward_timeout_s", "run_dir",
                  "warm_start", "eval.batch_size")
CONFIG_FILE = "config.yaml"


def claim_run_dir(kind: str, run_dir: str | Path | None) -> Path:
    """A new run's folder, created (see the module docstring). UserError for a folder holding files."""
    if run_dir is not None:
        path = Path(run_dir)
        for folder in (path, *path.parents):
            if folder.exists() and not folder.is_dir():
                raise UserError(f"run_dir {run_dir}: {folder} is a file, not a folder")
        if path.is_dir() and any(path.iterdir()):
            raise UserError(f"run folder {run_dir} already holds a run ({_contents(path)}): continue it with "
                            f"--resume {run_dir}, or give another run_dir (nothing was changed)")
        _mkdir(path, exist_ok=True)
        return path
    stem = Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 10_000):
        path = stem if n == 1 else stem.with_name(f"{stem.name}-{n}")
        try:
            _mkdir(path, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise UserError(f"cannot find a free run folder name next to {stem}")


def release_if_unused(run_dir: str | Path) -> None:
    """Remove a fresh run's folder if the run failed before writing anything of its own (its config alone
    counts as nothing): a failed start leaves no empty run folder behind."""
    path = Path(run_dir)
    if path.is_dir() and all(p.name == CONFIG_FILE and p.is_file() for p in path.iterdir()):
        shutil.rmtree(path, ignore_errors=True)


def claimed_run_dir(run_dir: str | Path) -> Path:
    """A folder the caller owns for this run (the job pipeline's, or its SFT stage's), created if missing."""
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _mkdir(path: Path, exist_ok: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir(exist_ok=exist_ok)


def _contents(path: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return ", ".join(names[:4]) + (f", ... ({len(names)} entries)" if len(names) > 4 else "")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b": value}``."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def is_safe_change(key: str) -> bool:
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_TO_CHANGE)


def read_config(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: unreadable ({e}); cannot check the resumed config against it") from None
    return data if isinstance(data, dict) else None


def check_resume(run_dir: str | Path, new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The changes ``new`` (a config as a dict) makes to the run's saved config: ``{key: (old, new)}``, all
    safe to change; UserError naming the keys that are not (the run would not be the run it was)."""
    old = read_config(run_dir)
    if old is None:
        return {}
    a, b = flatten(old), flatten(new)
    changed = {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    refused = {k: v for k, v in changed.items() if not is_safe_change(k)}
    if refused:
        shown = "; ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in list(refused.items())[:6])
        more = f" (+{len(refused) - 6} more)" if len(refused) > 6 else ""
        raise UserError(f"--resume {run_dir}: the config differs from the run's {CONFIG_FILE} in {shown}{more}; "
                        "only these may change on resume: " + ", ".join(s + ("*" if s.endswith(".") else "")
                                                                        for s in SAFE_TO_CHANGE))
    return {k: v for k, v in changed.items() if k != "run_dir"}


def write_config(run_dir: str | Path, cfg: dict[str, Any]) -> None:
    """A fresh run's ``config.yaml`` (in a folder the job pipeline resumed, its resume history is kept)."""
    path = Path(run_dir) / CONFIG_FILE
    history = _history(path)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False) + "".join(f"{line}\n" for line in history))


def _history(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.startswith("# resumed ")] if path.is_file() else []


def record_resume(run_dir: str | Path, cfg: dict[str, Any], step: int, changes: dict[str, tuple[Any, Any]]) -> None:
    """``config.yaml`` becomes the config in force, keeping the history of earlier resumes as comments."""
    path = Path(run_dir) / CONFIG_FILE
    history = _history(path)
    what = ", ".join(f"{k}: {o!r} -> {n!r}" for k, (o, n) in changes.items()) or "config unchanged"
    history.append(f"# resumed {time.strftime('%Y-%m-%d %H:%M:%S')} at step {step}: {what}")
    path.write_text(yaml.safe_dump(cfg, sort_keys=False) + "\n".join(history) + "\n")


__all__ = ["SAFE_TO_CHANGE", "check_resume", "claim_run_dir", "claimed_run_dir", "flatten", "is_safe_change", "read_config",
           "record_resume", "release_if_unused", "write_config"]
