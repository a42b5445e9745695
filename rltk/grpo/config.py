"""The GRPO job's configuration: the ``grpo:`` section and every other section of ``rltk grpo CONFIG``.

YAML keys mirror the fields; the dataclasses are the one source of defaults (see :mod:`rltk.core.config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from rewards import RewardSpec
from rltk.core.config import load_config
from rltk.data import DataConfig
from rltk.learner import LossConfig, OptimConfig
from rltk.models import ModelConfig
from rltk.rollouts import DistributedConfig, SamplingConfig


@dataclass(frozen=True)
class GRPOConfig:
    """The ``grpo:`` section: steps, optimisation and the objective's knobs."""

    steps: int = 50
    prompts_per_step: int = 4
    # optimisation
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0
    micro_batch_size: int = 8
    # objective
    advantage: str = "grpo"  # grpo | dr_grpo | rloo | batch_std | module:fn
    beta: float = 0.0  # KL weight (k3); 0 = no reference forward at all
    kl_reference: Literal["base", "init"] = "base"  # base: adapters disabled; init: the adapter the run started from
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2  # > epsilon_low = DAPO's clip-higher
    mu: int = 1  # optimizer steps per batch of rollouts
    loss_agg: Literal["sequence", "token", "constant"] = "sequence"
    mask_truncated: bool = False  # completions cut by max_new_tokens get no loss (DAPO overlong filtering)
    dynamic_sampling: bool = False  # DAPO: drop groups with equal rewards, draw more prompts to fill the batch
    max_draw_factor: float = 4.0  # dynamic sampling: at most this x prompts_per_step prompts drawn per step
    dense_base: bool = True  # CPU: frozen base weights as dense bf16, 4-bit dequantized once (see rltk.learner)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.prompts_per_step < 1 or self.mu < 1:
            raise ValueError("steps must be >= 0, prompts_per_step and mu >= 1")
        if self.beta < 0 or self.epsilon_low < 0 or self.epsilon_high < 0:
            raise ValueError("beta and the epsilons must be >= 0")
        if self.max_draw_factor < 1:
            raise ValueError(f"max_draw_factor must be >= 1, got {self.max_draw_factor}")

    def optim(self) -> OptimConfig:
        return OptimConfig(lr=self.lr, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps, schedule=self.schedule,
                           min_lr_ratio=self.min_lr_ratio, max_grad_norm=self.max_grad_norm,
                           micro_batch_size=self.micro_batch_size)

    def loss(self, temperature: float) -> LossConfig:
        return LossConfig(epsilon_low=self.epsilon_low, epsilon_high=self.epsilon_high, beta=self.beta,
                          loss_agg=self.loss_agg, mu=self.mu, temperature=temperature)


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 25  # steps between checkpoints (0 = only the final adapter)
    keep: int = 2  # newest checkpoints kept (0 = all)


@dataclass(frozen=True)
class LogConfig:
    samples_every: int = 5  # write sample completions every N steps (0 = never)
    samples_groups: int = 2  # groups written each time
    live: bool = True  # rich live view (only on a terminal)


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation of the main-job pipeline (before SFT, after SFT, after GRPO)."""

    enabled: bool = False
    task: str = "arithmetic"
    task_args: dict[str, Any] = field(default_factory=dict)
    # the eval's system prompt: "data" = the one the policy is trained with (data.system_prompt, when set: an
    # adapter evaluated under another prompt than it learned with loses its format), "task" = the task's own,
    # anything else = that text
    system_prompt: str = "data"
    n: int = 300  # held-out items
    max_new_tokens: int = 64
    samples: int = 8  # sampled pass@1: completions per item at the training temperature (0 = greedy only)
    sampled_stages: list[str] = field(default_factory=lambda: ["base", "start", "sft", "grpo"])  # where pass@1 is measured
    batch_size: int = 64
    min_format_rate: float = 0.5  # warn before GRPO when the starting checkpoint's format rate is lower


@dataclass(frozen=True)
class GRPOJobConfig:
    """``rltk grpo CONFIG``: every section of a GRPO run (YAML keys mirror these fields)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    rewards: list[RewardSpec] = field(default_factory=list)
    reward_timeout_s: float = 5.0
    init_adapter: str | None = None  # a peft adapter folder to start from (e.g. an SFT run's adapter)
    warm_start: str | None = None  # an SFT config (YAML, relative to this file) run first; its adapter is the start
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    seed: int = 0
    run_dir: str | None = None  # default: runs/grpo-YYYYmmdd-HHMMSS

    def __post_init__(self) -> None:
        if self.init_adapter is not None and self.model.adapter is not None:
            raise ValueError("give the starting adapter once: init_adapter or model.adapter, not both")
        if self.init_adapter is not None and self.warm_start is not None:
            raise ValueError("init_adapter and warm_start both name the starting adapter; keep one")


def load_job_config(path: str | Path, overrides: Sequence[str] = ()) -> GRPOJobConfig:
    """``load_config`` for GRPO jobs; a relative ``warm_start`` path is relative to the config file's folder."""
    cfg = load_config(GRPOJobConfig, path, list(overrides))
    if cfg.warm_start is not None and not Path(cfg.warm_start).is_absolute():
        cfg = dataclasses.replace(cfg, warm_start=str(Path(path).parent / cfg.warm_start))
    return cfg
