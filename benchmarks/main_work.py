"""The main job's GRPO work as the benchmarks run it: SmolLM2-135M with LoRA r=16 on every linear layer,
4 arithmetic prompts x 8 completions of at most 48 tokens a step, math_answer + 0.5 x format_answer, and one
benchmark-specific reward term (label, weight), no checkpoints, no live progress."""

from __future__ import annotations

from typing import Any

from rltk.core.config import from_dict
from rltk.grpo import GRPOJobConfig

SYSTEM = "Solve the problem. Finish your reply with a last line of the form '#### <answer>'."


def main_job_work(steps: int, run_dir: str, extra_reward: dict[str, Any], *, quant: str = "nf4",
                  sampling: dict[str, Any] | None = None, grpo: dict[str, Any] | None = None,
                  **top: Any) -> GRPOJobConfig:
    """The config (``grpo`` keys, e.g. ``micro_batch_size``, and top-level keys such as ``reward_timeout_s``
    override the defaults)."""
    return from_dict(GRPOJobConfig, {
        "model": {"spec": "smollm2-135m", "quant": quant, "lora": {"r": 16, "alpha": 32, "target_modules": "all-linear"}},
        "data": {"source": "arithmetic", "limit": 500, "system_prompt": SYSTEM},
        "sampling": {"group_size": 8, "max_new_tokens": 48, "temperature": 1.0, **(sampling or {})},
        "grpo": {"steps": steps, "prompts_per_step": 4, "lr": 1e-5, "micro_batch_size": 8, **(grpo or {})},
        "rewards": [{"name": "math_answer", "label": "correct"},
                    {"name": "format_answer", "label": "format", "weight": 0.5}, extra_reward],
        "checkpoint": {"every": 0}, "log": {"live": False, "samples_every": 0},
        "run_dir": run_dir, **top,
    })
