"""Run observability: ``metrics.jsonl`` (one line per step), ``samples.jsonl`` (completions with
their rewards every N steps), a rich live view with an ETA, and warnings for known failures.

The failure checks are pure functions over the metric history (:func:`failure_warnings`):

* every group of the step had equal rewards: no learning signal at all;
* the format reward rises while correctness falls (reward hacking the format);
* completion length collapsing, or most completions hitting ``max_new_tokens``.

>>> hist = [{"step": 1, "zero_variance_share": 1.0, "groups": 4}]
>>> failure_warnings(hist)
['step 1: all 4 groups had equal rewards: no learning signal (try dynamic sampling, a larger group, or easier prompts)']
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

WINDOW = 8  # steps compared by the trend checks (two halves of this window)


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")


def failure_warnings(history: Sequence[dict[str, Any]], correct_key: str | None = None, format_key: str | None = None,
                     max_new_tokens: int | None = None, warned: set[str] | None = None) -> list[str]:
    """Warnings the newest step of ``history`` raises. ``warned``: kinds already reported (each trend
    warning is given once per run; the no-signal warning every time it happens)."""
    if not history:
        return []
    warned = warned if warned is not None else set()
    last = history[-1]
    out: list[str] = []
    drawn = last.get("prompts_drawn", last.get("groups", 0))
    if last.get("zero_variance_share") == 1.0 and drawn:
        out.append(f"step {last['step']}: all {drawn} groups had equal rewards: no learning signal "
                   "(try dynamic sampling, a larger group, or easier prompts)")
    if len(history) >= WINDOW:
        early, late = history[-WINDOW:-WINDOW // 2], history[-WINDOW // 2:]
        if correct_key and format_key and "format_vs_correct" not in warned:
            f0, f1 = _mean([h.get(format_key) for h in early]), _mean([h.get(format_key) for h in late])
            c0, c1 = _mean([h.get(correct_key) for h in early]), _mean([h.get(correct_key) for h in late])
            if f1 - f0 >= 0.1 and c0 - c1 >= 0.05:
                warned.add("format_vs_correct")
                out.append(f"step {last['step']}: format reward rose {f0:.2f} -> {f1:.2f} while correctness fell "
                           f"{c0:.2f} -> {c1:.2f}: the policy may be gaming the format (gate the format reward on "
                           "correctness, or lower its weight)")
        l0, l1 = _mean([h.get("completion_len") for h in early]), _mean([h.get("completion_len") for h in late])
        if "length_collapse" not in warned and l0 >= 4 and l1 < 0.5 * l0:
            warned.add("length_collapse")
            out.append(f"step {last['step']}: completion length collapsing ({l0:.1f} -> {l1:.1f} tokens)")
    trunc = [h.get("truncation_rate") for h in history[-3:]]
    if "length_limit" not in warned and len(trunc) == 3 and all(t is not None and t >= 0.5 for t in trunc):
        warned.add("length_limit")
        limit = f" ({max_new_tokens} tokens)" if max_new_tokens else ""
        out.append(f"step {last['step']}: half or more of the completions hit the length limit{limit} for 3 steps: "
                   "raise sampling.max_new_tokens, or mask truncated completions (grpo.mask_truncated)")
    return out


class MetricsLog:
    """Appends step records and samples to the run folder and keeps the history for the warnings."""

    def __init__(self, run_dir: str | Path, correct_key: str | None = None, format_key: str | None = None,
                 max_new_tokens: int | None = None, tensorboard: bool = False):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.samples_path = self.run_dir / "samples.jsonl"
        self.correct_key, self.format_key, self.max_new_tokens = correct_key, format_key, max_new_tokens
        self.history: list[dict[str, Any]] = read_jsonl(self.metrics_path) if self.metrics_path.is_file() else []
        self._warned: set[str] = set()
        self._tb: Any = None
        if tensorboard:  # RUN_DIR/tensorboard: `tensorboard --logdir RUN_DIR`
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def log(self, record: dict[str, Any]) -> list[str]:
        """Append one step; returns the warnings it raises (also stored in the record)."""
        self.history.append(record)
        warnings = failure_warnings(self.history, self.correct_key, self.format_key, self.max_new_tokens, self._warned)
        if warnings:
            record["warnings"] = warnings
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record, default=_jsonable) + "\n")
        if self._tb is not None:
            step = int(record.get("step", len(self.history)))
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                    self._tb.add_scalar(key, value, step)
            self._tb.flush()
        return warnings

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def log_samples(self, records: list[dict[str, Any]]) -> None:
        with open(self.samples_path, "a") as f:
            for r in records:
                f.write(json.dumps(r, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


# ----------------------------------------------------------------------------- live view


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return format(x, spec) if isinstance(x, (int, float)) else str(x)


Column = tuple[str, str, str]  # (header, record key, format spec)


def grpo_columns(reward_labels: Sequence[str]) -> list[Column]:
    return ([("step", "step", "d"), ("reward", "reward_mean", ".3f")]
            + [(lab, f"reward/{lab}", ".3f") for lab in reward_labels]
            + [("acc", "accuracy", ".3f"), ("KL", "kl", ".4f"), ("clip", "clip_fraction", ".2f"),
               ("len", "completion_len", ".1f"), ("0-var", "zero_variance_share", ".2f"), ("trunc", "truncation_rate", ".2f"),
               ("tok/s", "tokens_per_s", ".0f"), ("s/step", "seconds/step", ".1f")])


SFT_COLUMNS: list[Column] = [("step", "step", "d"), ("epoch", "epoch", "d"), ("loss", "loss", ".4f"), ("lr", "lr", ".2e"),
                             ("grad norm", "grad_norm", ".3f"), ("tok/s", "tokens_per_s", ".0f"), ("s/step", "seconds/step", ".1f")]


class LiveView:
    """Progress of a run, on stderr. On a terminal: a rich progress bar (step, ETA) with a table of the newest
    step's metrics, warnings printed above. Elsewhere (nohup, CI, ``ray job submit`` logs): one plain line per
    step with the same columns and the ETA. ``enabled=False`` prints nothing but the warnings and notes.
    """

    def __init__(self, total_steps: int, start_step: int = 0, title: str = "GRPO", columns: Sequence[Column] = (),
                 enabled: bool = True):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self.plain = enabled and not self.console.is_terminal
        self._t0: float | None = None
        self.total, self.start = total_steps, start_step
        self.columns = list(columns) or grpo_columns(())
        self.title = title
        self._live: Any = None
        self._last: dict[str, Any] = {}
        if self.enabled:
            from rich.live import Live
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn(f"[bold]{title}"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"),
                                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console)
            self._task = self._progress.add_task(title, total=total_steps, completed=start_step)
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for header, _, _ in self.columns:
            table.add_column(header, justify="right")
        table.add_row(*[_fmt(self._last.get(key), spec) for _, key, spec in self.columns])
        return Group(self._progress, table)

    def update(self, record: dict[str, Any], warnings: Sequence[str] = ()) -> None:
        self._last = record
        for w in warnings:
            self.console.print(f"[yellow]warning:[/yellow] {w}")
        if self.plain:
            print(self.plain_line(record), file=sys.stderr, flush=True)
        if self._live is not None:
            self._progress.update(self._task, completed=record.get("step", 0))
            self._live.update(self._render())

    def plain_line(self, record: dict[str, Any]) -> str:
        """``GRPO step 3/30  reward 0.412  correct 0.310 ...  s/step 12.1  ETA 5m24s`` (the live view's columns)."""
        step = int(record.get("step", 0))
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._t0_step = now - float(record.get("seconds/step") or 0.0), step - 1
        done = step - self._t0_step
        eta = (now - self._t0) / done * (self.total - step) if done > 0 and self.total > step else 0.0
        cells = [f"{header} {_fmt(record.get(key), spec)}" for header, key, spec in self.columns if key != "step"]
        return f"{self.title} step {step}/{self.total}  " + "  ".join(cells) + f"  ETA {_duration(eta)}"

    def note(self, text: str) -> None:
        self.console.print(text)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __enter__(self) -> "LiveView":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["LiveView", "MetricsLog", "SFT_COLUMNS", "failure_warnings", "grpo_columns", "read_jsonl"]
