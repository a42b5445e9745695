"""The GRPO job's configuration: the ``grpo:`` section and every other section of ``rltk grpo CONFIG``.

YAML keys mirror the fields; the dataclasses are the one source of defaults (see :mod:`rltk.core.config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from rewards import RewardSpec
from rltk.core.config import check_range, config_relative, load_config
from rltk.data import DataConfig
from rltk.loss import LossFields
from rltk.policy import ModelConfig
from rltk.optim import OptimFields
from rltk.rollouts import DistributedConfig, SamplingConfig


@dataclass(frozen=True)
class GRPOConfig(OptimFields, LossFields):
    """The ``grpo:`` section: steps, the optimiser (:class:`rltk.optim.OptimFields`: lr, schedule, clipping,
    micro-batch), the objective (:class:`rltk.loss.LossFields`: epsilons, beta, loss_agg, mu) and these."""

    steps: int = 50
    prompts_per_step: int = 4
    advantage: str = "grpo"  # grpo | dr_grpo | rloo | batch_std | module:fn
    kl_reference: Literal["base", "init"] = "base"  # base: adapters disabled; init: the adapter the run started from
    mask_truncated: bool = False  # completions cut by max_new_tokens get no loss (DAPO overlong filtering)
    dynamic_sampling: bool = False  # DAPO: drop groups with equal rewards, draw more prompts to fill the batch
    max_draw_factor: float = 4.0  # dynamic sampling: at most this x prompts_per_step prompts drawn per step
    dense_base: bool = True  # CPU: frozen base weights dense at the compute dtype, 4-bit dequantized once (see rltk.policy.memory.dense_frozen_base)

    def __post_init__(self) -> None:
        OptimFields.__post_init__(self)
        LossFields.__post_init__(self)
        check_range("steps", self.steps, low=0)
        check_range("prompts_per_step", self.prompts_per_step, low=1)
        check_range("max_draw_factor", self.max_draw_factor, low=1)
        if not self.advantage:
            raise ValueError("advantage must name an estimator (grpo, dr_grpo, rloo, batch_std or module:fn)")


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 25  # steps between checkpoints (0 = only the final adapter)
    keep: int = 2  # newest checkpoints kept (0 = all)

    def __post_init__(self) -> None:
        check_range("every", self.every, low=0)
        check_range("keep", self.keep, low=0)


@dataclass(frozen=True)
class LogConfig:
    samples_every: int = 5  # write sample completions every N steps (0 = never)
    samples_groups: int = 2  # groups written each time
    live: bool = True  # progress: a rich live view on a terminal, one plain line per step elsewhere; false = none
    tensorboard: bool = False  # also write the step metrics for TensorBoard (RUN_DIR/tensorboard)

    def __post_init__(self) -> None:
        check_range("samples_every", self.samples_every, low=0)
        check_range("samples_groups", self.samples_groups, low=0)


EXTRA_EVAL_KEYS = {"task", "task_args", "data", "n", "max_new_tokens", "name"}


@dataclass(frozen=True)
class EvalConfig:
    """Held-out evaluation of the main-job pipeline (before SFT, after SFT, after GRPO)."""

    enabled: bool = False
    task: str = "arithmetic"
    task_args: dict[str, Any] = field(default_factory=dict)
    data: str | None = None  # the task's rows file (relative to this config), for tasks without a built-in source
    # the eval's system prompt: "data" = the one the policy is trained with (data.system_prompt, when set: an
    # adapter evaluated under another prompt than it learned with loses its format), "task" = the task's own,
    # anything else = that text
    system_prompt: str = "data"
    n: int = 300  # held-out items
    max_new_tokens: int = 64
    samples: int = 8  # sampled pass@1: completions per item at the training temperature (0 = greedy only)
    sampled_stages: list[str] = field(default_factory=lambda: ["base", "start", "sft", "grpo"])  # where pass@1 is measured
    batch_size: int = 64
    decode_threads: int = 0  # threads decoding together (0: auto, rltk.policy.parallel)
    min_format_rate: float = 0.5  # warn before GRPO when the starting checkpoint's format rate is lower
    # more held-out tasks, greedy, at every stage: [{task: gsm8k, data: test.jsonl, n: 100, max_new_tokens: 256}]
    extra: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_range("n", self.n, low=1)
        check_range("max_new_tokens", self.max_new_tokens, low=1)
        check_range("samples", self.samples, low=0)
        check_range("batch_size", self.batch_size, low=1)
        check_range("decode_threads", self.decode_threads, low=0)
        check_range("min_format_rate", self.min_format_rate, low=0, high=1)
        for i, x in enumerate(self.extra):
            bad = sorted(set(x) - EXTRA_EVAL_KEYS) if isinstance(x, dict) else ["(not a mapping)"]
            if bad or not isinstance(x.get("task"), str):
                raise ValueError(f"extra[{i}]: needs a task and only {', '.join(sorted(EXTRA_EVAL_KEYS))} (got {bad or 'no task'})")
        unknown = sorted(set(self.sampled_stages) - {"base", "start", "sft", "grpo"})
        if unknown:
            raise ValueError(f"sampled_stages: unknown stage(s) {', '.join(unknown)} (stages: base, start, sft, grpo)")


@dataclass(frozen=True)
class RewardSandboxConfig:
    """The ``reward_sandbox:`` section: how user reward functions run (see ``rewards.RewardSet``)."""

    processes: int = 0  # sandbox worker processes (0 = rewards' default, 8)
    batch_timeout_s: float | None = None  # limit of the one call per batch (default 2 x reward_timeout_s)
    breaker_after: int = 3  # consecutive scoring calls in which a reward timed out everywhere before it is dead (0 = never)
    on_breaker: Literal["stop", "disable"] = "stop"  # a dead reward stops the run, or scores None from then on
    memory_mb: int | None = 4096  # address space per worker (null = no limit)
    network: bool = False  # workers get no network where the kernel allows a private network namespace
    pass_env: list[str] = field(default_factory=list)  # environment variables passed to rewards (the rest is withheld)

    def __post_init__(self) -> None:
        check_range("processes", self.processes, low=0)
        check_range("breaker_after", self.breaker_after, low=0)
        if self.batch_timeout_s is not None:
            check_range("batch_timeout_s", self.batch_timeout_s, low=0, low_open=True)
        if self.memory_mb is not None:
            check_range("memory_mb", self.memory_mb, low=1)

    def options(self) -> dict[str, Any]:
        """``RewardSet`` keyword arguments."""
        return {"processes": self.processes, "batch_timeout_s": self.batch_timeout_s, "breaker_after": self.breaker_after,
                "on_breaker": self.on_breaker, "memory_mb": self.memory_mb, "network": self.network,
                "pass_env": tuple(self.pass_env)}


@dataclass(frozen=True)
class GRPOJobConfig:
    """``rltk grpo CONFIG``: every section of a GRPO run (YAML keys mirror these fields)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    rewards: list[RewardSpec] = field(default_factory=list)
    reward_timeout_s: float = 5.0
    reward_fail_steps: int = 1  # a reward failing on every sample of this many consecutive steps stops the run
    reward_sandbox: RewardSandboxConfig = field(default_factory=RewardSandboxConfig)
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
        check_range("reward_timeout_s", self.reward_timeout_s, low=0, low_open=True)
        check_range("reward_fail_steps", self.reward_fail_steps, low=1)
        if self.sampling.group_size < 2:  # every estimator compares a completion with its group
            raise ValueError(f"sampling.group_size is {self.sampling.group_size}: group-relative advantages "
                             f"({self.grpo.advantage}) need at least 2 completions per prompt")


def load_job_config(path: str | Path, overrides: Sequence[str] = ()) -> GRPOJobConfig:
    """``load_config`` for GRPO jobs. Relative paths in the file are relative to its folder: ``warm_start``
    always; reward files (``file.py:fn``), ``data.source``, ``init_adapter``, ``eval.data`` and ``eval.extra`` data files when
    they exist there
    (see :func:`rltk.core.config.config_relative`)."""
    cfg = load_config(GRPOJobConfig, path, list(overrides))
    if cfg.warm_start is not None and not Path(cfg.warm_start).is_absolute():
        cfg = dataclasses.replace(cfg, warm_start=str(Path(path).parent / cfg.warm_start))
    rewards = [dataclasses.replace(r, name=_reward_file_relative(r.name, path)) for r in cfg.rewards]
    init = config_relative(cfg.init_adapter, path) if cfg.init_adapter else cfg.init_adapter
    extra = [{**x, "data": config_relative(x["data"], path)} if x.get("data") else x for x in cfg.eval.extra]
    edata = config_relative(cfg.eval.data, path) if cfg.eval.data else None
    return dataclasses.replace(cfg, rewards=rewards, init_adapter=init, eval=dataclasses.replace(cfg.eval, extra=extra, data=edata),
                               data=dataclasses.replace(cfg.data, source=config_relative(cfg.data.source, path)))


def _reward_file_relative(name: str, path: str | Path) -> str:
    file, sep, attr = name.rpartition(":")
    return f"{config_relative(file, path)}:{attr}" if sep and file.endswith(".py") else name