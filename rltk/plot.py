"""``rltk plot RUN_DIR``: the curves of a run's ``metrics.jsonl`` in one PNG.

GRPO runs: reward (total and per component), accuracy, reasoning validity and lucky answers, KL, completion length (and truncation).
SFT runs: loss and learning rate. matplotlib is an optional extra (``pip install rltk[plot]``);
it is imported only here, with a clear error when missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rltk.core.errors import UserError
from rltk.metrics import read_jsonl


def _series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for h in history:
        v = h.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            xs.append(h["step"])
            ys.append(float(v))
    return xs, ys


def _smooth(ys: list[float], k: int) -> list[float]:
    """Trailing moving average over ``k`` steps (the raw curve is drawn faintly behind it)."""
    out, acc = [], 0.0
    for i, y in enumerate(ys):
        acc += y
        if i >= k:
            acc -= ys[i - k]
        out.append(acc / min(i + 1, k))
    return out


def plot_run(run_dir: str | Path, out: str | Path | None = None, smooth: int = 5) -> Path:
    """Draw ``RUN_DIR/metrics.jsonl`` to ``out`` (default ``RUN_DIR/curves.png``); returns the PNG path."""
    run = Path(run_dir)
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        raise UserError(f"{run_dir}: no metrics.jsonl (is it a run folder?)")
    history = read_jsonl(metrics)
    if not history:
        raise UserError(f"{metrics}: no steps logged yet")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise UserError("rltk plot needs matplotlib: pip install 'rltk[plot]' (or pip install matplotlib)") from e

    if "reward_mean" in history[0]:
        reward_keys = sorted({k for h in history for k in h if k.startswith("reward/")})
        panels = [("reward", ["reward_mean", *reward_keys]), ("accuracy", ["accuracy"]),
                  ("reasoning (share of completions)", ["reasoning_validity", "lucky_answers"]), ("KL (k3)", ["kl"]),
                  ("completion tokens", ["completion_len"]), ("truncated / zero-variance share",
                                                               ["truncation_rate", "zero_variance_share"])]
    else:
        panels = [("loss", ["loss"]), ("learning rate", ["lr"])]
    panels = [(title, keys) for title, keys in panels if any(_series(history, k)[0] for k in keys)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.4 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, keys) in zip(axes[:, 0], panels):
        for key in keys:
            xs, ys = _series(history, key)
            if not xs:
                continue
            line, = ax.plot(xs, ys, alpha=0.3, linewidth=1)
            ax.plot(xs, _smooth(ys, smooth), color=line.get_color(), linewidth=1.8,
                    label=key.removeprefix("reward/") if key != "reward_mean" else "total")
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(f"{run.name} ({len(history)} steps, lines: {smooth}-step average)", fontsize=11)
    fig.tight_layout()
    target = Path(out) if out is not None else run / "curves.png"
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


__all__ = ["plot_run"]
