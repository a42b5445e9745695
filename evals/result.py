"""The result of one eval run, :class:`EvalResult`, and its JSON file (:meth:`EvalResult.save`,
:func:`load_result`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltk.core.errors import UserError

RESULT_FORMAT = "rltk-eval/1"


@dataclass
class EvalResult:
    """One eval run. ``records[i]`` is one item; ``metrics`` the summary; ``config`` how it was made."""

    task: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    records: list[dict[str, Any]]
    path: str | None = None  # where it was saved or loaded from

    @property
    def n_samples(self) -> int:
        return int(self.config["n_samples"])

    @property
    def item_scores(self) -> list[float]:
        """Per-item primary score: 0/1 correctness (greedy), per-item pass@1 (sampled), or the graded score."""
        return [float(r["score"]) for r in self.records]

    @property
    def binary(self) -> bool:
        """Item scores are 0/1 (greedy, one sample, a task with a correctness component)."""
        return bool(self.config.get("binary")) and self.n_samples == 1

    def to_dict(self) -> dict[str, Any]:
        return {"format": RESULT_FORMAT, "task": self.task, "config": self.config, "metrics": self.metrics, "records": self.records}

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON (atomically: a temporary file renamed into place)."""
        p = Path(path).expanduser()
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False, default=_json_default) + "\n", encoding="utf-8")
        tmp.replace(p)
        self.path = str(p)
        return p


def _json_default(o: Any) -> Any:
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def load_result(path: str | Path) -> EvalResult:
    """Read a result JSON written by :meth:`EvalResult.save`; UserError when it is not one."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"result file not found: {path}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a JSON eval result ({e})") from e
    if not isinstance(data, dict) or data.get("format") != RESULT_FORMAT:
        raise UserError(f"{path}: not an rltk eval result (expected \"format\": \"{RESULT_FORMAT}\")")
    for key in ("task", "config", "metrics", "records"):
        if key not in data:
            raise UserError(f"{path}: eval result lacks '{key}'")
    for i, r in enumerate(data["records"]):
        missing = [k for k in ("id", "item_hash", "score") if k not in r]
        if missing:
            raise UserError(f"{path}: record {i} lacks '{missing[0]}'")
    return EvalResult(data["task"], data["config"], data["metrics"], data["records"], path=str(p))
