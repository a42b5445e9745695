"""GRPO: the job's config (:mod:`.config`), scoring rollouts into a batch (:mod:`.scoring`), the step
loop (:mod:`.loop`: :func:`train`), what a step records (:mod:`.record`) and the main-job pipeline with
evals around SFT and GRPO (:mod:`.job`: :func:`run_job`).

From Python::

    from rltk.core.config import load_config
    from rltk.grpo import GRPOJobConfig, train
    cfg = load_config(GRPOJobConfig, "examples/arithmetic/grpo.yaml", ["grpo.steps=20"])
    result = train(cfg)                       # or train(cfg, resume="runs/my-run")
    result.adapter_dir, result.history[-1]["reward_mean"]
"""

from rltk.grpo.config import (CheckpointConfig, EvalConfig, GRPOConfig, GRPOJobConfig, LogConfig, RewardSandboxConfig,
                              load_job_config)
from rltk.grpo.job import JobResult, eval_task, run_job
from rltk.grpo.loop import GRPOResult, train
from rltk.grpo.scoring import ScoredGroup, build_train_batch, score_groups

__all__ = [
    "CheckpointConfig",
    "EvalConfig",
    "GRPOConfig",
    "GRPOJobConfig",
    "GRPOResult",
    "JobResult",
    "LogConfig",
    "RewardSandboxConfig",
    "ScoredGroup",
    "build_train_batch",
    "eval_task",
    "load_job_config",
    "run_job",
    "score_groups",
    "train",
]
