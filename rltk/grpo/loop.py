"""The GRPO loop: :func:`train` runs (or resumes) the steps of one run.

One step, top to bottom (:func:`train`):

1. **rollout** — draw ``prompts_per_step`` prompts, sample ``G`` completions each (a rollout
   backend: in-process :class:`LocalRollouts` sharing the learner's model, or Ray workers);
2. **reward** — score every completion with the run's :class:`rewards.RewardSet` (each
   component kept); with ``dynamic_sampling`` (DAPO) groups whose rewards are all equal are
   dropped and more prompts are drawn until the batch is full;
3. **advantage** — group-relative (or ``dr_grpo``, ``rloo``, ``batch_std``) per group;
4. **learner step** — the policy loss (``grpo.policy_loss``: PPO's clipped surrogate, GSPO, CISPO; + KL),
   ``mu`` optimizer steps, new adapter to the samplers;
5. **log / checkpoint** — ``metrics.jsonl``, ``samples.jsonl``, warnings, the live view; an
   atomic checkpoint every ``checkpoint.every`` steps.

From Python::

    from rltk.core.config import load_config
    from rltk.grpo import GRPOJobConfig, train
    cfg = load_config(GRPOJobConfig, "examples/arithmetic/grpo.yaml", ["grpo.steps=20"])
    result = train(cfg)                       # or train(cfg, resume="runs/my-run")
    result.adapter_dir, result.history[-1]["reward_mean"]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rewards import RewardScores, RewardSet
from rltk.advantages import compute_advantages, zero_variance_groups
from rltk.checkpoint import Checkpoint, latest_checkpoint, load_adapter_into, restore_logs, save_checkpoint
from rltk.core.config import to_dict
from rltk.core.errors import UserError
from rltk.core.seeds import restore_rng, step_seed
from rltk.data import Dataset, PromptStream
from rltk.grpo.config import GRPOJobConfig
from rltk.grpo.inputs import Inputs, load_inputs
from rltk.grpo.record import PhaseTimer, StepOutcome, reward_key, sample_records, step_record
from rltk.grpo.scoring import (ScoredGroup, StepRollouts, accuracy_label, build_train_batch, format_label, score_groups,
                               trainer_state, valid_mask)
from rltk.learner import Learner, LossConfig, UpdateStats
from rltk.metrics import LiveView, MetricsLog, grpo_columns
from rltk.policy import Policy, policy_from_config, save_adapter, trainable_state
from rltk.rollouts import PromptRequest, make_backend
from rltk.rollouts.cores import pin_process
from rltk.rollouts.ray_rewards import RayRewardSet
from rltk.runs import check_resume, claim_run_dir, claimed_run_dir, record_resume, release_if_unused, write_config
from rltk.sft import warm_start


@dataclass
class GRPOResult:
    run_dir: Path
    adapter_dir: Path
    history: list[dict[str, Any]]
    policy: Policy
    steps: int  # steps completed


@dataclass
class _Run:
    """Everything the loop holds between steps (built by :func:`_setup`)."""

    cfg: GRPOJobConfig
    run_dir: Path
    data: Dataset
    stream: PromptStream
    reward_set: RewardSet
    policy: Policy
    learner: Learner
    backend: Any
    log: MetricsLog
    view: LiveView
    start_step: int
    pending: tuple[list[PromptRequest], Any] | None = None  # pipeline: step t+1's rollouts, submitted during step t
    failures: dict[str, int] = field(default_factory=dict)  # reward failures by label, whole run
    all_failed_steps: dict[str, int] = field(default_factory=dict)  # label -> consecutive steps it failed on every sample
    keep_share: float | None = None  # dynamic sampling: share of drawn groups with a reward spread, running mean of steps


def train(cfg: GRPOJobConfig, *, reward_set: RewardSet | None = None, policy: Policy | None = None,
          backend: Any = None, resume: str | Path | None = None, live: bool | None = None,
          claimed_dir: bool = False, inputs: Inputs | None = None) -> GRPOResult:
    """Run (or resume) GRPO as configured; returns the run folder, the final adapter and the history.

    A fresh run refuses a ``run_dir`` that holds another run's files (see :mod:`rltk.runs`);
    ``claimed_dir``: the caller (the job pipeline) has already made ``cfg.run_dir`` this run's folder;
    ``inputs``: its :func:`load_inputs` (else loaded here, before any model).
    """
    run = _setup(cfg, reward_set, policy, backend, resume, live, claimed_dir, inputs)
    g, unpin = cfg.grpo, (lambda: None)
    try:
        if cfg.distributed.learner_cores is not None:  # pinned after Ray started: its processes keep every core
            unpin = pin_process(cfg.distributed.learner_cores, "distributed.learner_cores")
        for step in range(run.start_step, g.steps):
            timer = PhaseTimer()
            # 1-2. rollout + reward: G completions per prompt, scored (dynamic sampling refills the batch)
            drawn = _rollout_and_score(run, step, timer)
            scored = drawn.scored
            # 3. advantage: one per completion, relative to its group (samples a reward failed on: none)
            rewards, valid, advantages, finite = _advantages(run, scored)
            if cfg.distributed.pipeline and step + 1 < g.steps:  # step t+1 samples with this step's adapter while the learner works
                with timer("generate"):  # returns at once with Ray; in-process it generates here
                    run.pending = _submit(run, step + 1, 0, g.prompts_per_step)
            # 4. learner step; the samplers get the new adapter
            stale = sum(s.group.policy_version != run.learner.version for s in scored)  # pipelined rollouts
            with timer("learn"):
                if not finite:
                    stats = UpdateStats(skipped="non-finite reward")
                else:
                    batch = build_train_batch(scored, advantages, run.learner.version, g.mask_truncated,
                                              cfg.sampling.max_new_tokens)  # failed samples left out
                    stats = run.learner.grpo_update(batch, LossConfig.of(g, cfg.sampling.temperature), step)
                sync = _sync(run) if stats.applied else {}
            # 5. log, checkpoint
            record = _record(run, StepOutcome(step, scored, rewards[valid], stats, timer, drawn.drawn, drawn.flat,
                                              stale, sync, drawn.sampled_tokens, failed=int((~valid).sum())))
            run.view.update(record, run.log.log(record))
            if cfg.log.samples_every and (step + 1) % cfg.log.samples_every == 0:
                run.log.log_samples(sample_records(step + 1, scored, advantages, cfg.log.samples_groups))
            if cfg.checkpoint.every and (step + 1) % cfg.checkpoint.every == 0 and step + 1 < g.steps:
                _save(run, step + 1)
        adapter_dir = _finish(run)
    finally:
        unpin()
        run.view.close()
        run.log.close()
        run.backend.close()
    return GRPOResult(run.run_dir, adapter_dir, run.log.history, run.policy, g.steps)


# ----------------------------------------------------------------------------- loop phases


def _submit(run: _Run, step: int, draw: int, k: int) -> tuple[list[PromptRequest], Any]:
    requests = [PromptRequest(pos, run.data.rows[row], run.data.messages(row)) for pos, row in run.stream.draw(k)]
    return requests, run.backend.submit(requests, step_seed(run.cfg.seed, step, draw))


def _advantages(run: _Run, scored: list[ScoredGroup]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Rewards ``[B, G]``, the mask of samples that were scored, their advantages, and whether every scored
    reward is finite (if not, the step is skipped)."""
    rewards = torch.tensor([s.rewards for s in scored], dtype=torch.float32)  # [B, G]
    valid = valid_mask(scored) if scored else torch.ones_like(rewards, dtype=torch.bool)  # [B, G]
    finite = bool(torch.isfinite(rewards[valid]).all()) if scored else True
    if not scored or not finite:
        return rewards, valid, torch.zeros_like(rewards), finite
    return rewards, valid, compute_advantages(run.cfg.grpo.advantage, rewards, valid), finite


def _rollout_and_score(run: _Run, step: int, timer: PhaseTimer) -> StepRollouts:
    """Groups for this step, the number of prompts drawn and how many of them had equal rewards.

    Without dynamic sampling every group is kept. With it, groups whose G rewards are all equal are
    dropped and more prompts are drawn (at most ``max_draw_factor x prompts_per_step``), each later
    draw sized by the share kept so far; groups beyond ``prompts_per_step`` are not trained on. The first draw
    is sized by the share the previous steps kept (:func:`first_draw`), so most steps sample once, in one batch:
    refills are small batches, and small batches decode slowly (a 49k-token head at a few rows).
    A reward that failed on every sample of the step (``reward_fail_steps`` steps in a row) stops the run."""
    g = run.cfg.grpo
    want, budget = g.prompts_per_step, int(g.max_draw_factor * g.prompts_per_step)
    out = StepRollouts([])
    kept: list[ScoredGroup] = []
    draw = 0
    while len(kept) < want and out.drawn < budget:
        if draw == 0 and run.pending is not None:
            requests, handle = run.pending
            run.pending = None
        else:
            need = want - len(kept)
            if draw > 0:  # size the refill by the share of groups that had signal so far
                need = int(need / max(len(kept) / out.drawn, 0.25) + 0.999)
            elif g.dynamic_sampling:
                need = first_draw(want, run.keep_share)
            with timer("generate"):  # in-process backends generate in submit, Ray ones in collect
                requests, handle = _submit(run, step, draw, min(need, budget - out.drawn))
        with timer("generate"):
            groups = run.backend.collect(handle)
        out.sampled_tokens += sum(len(c) for grp in groups for c in grp.completion_ids)
        with timer("reward"):
            scored, scores = score_groups(run.reward_set, groups, [r.messages for r in requests],
                                          trainer_state=trainer_state(step, g.steps, run.stream.cursor / run.stream.n))
        _count_failures(run, out, scores)
        out.drawn += len(requests)
        draw += 1
        flat = (zero_variance_groups(torch.tensor([s.rewards for s in scored]), valid_mask(scored)).tolist()
                if scored else [])  # [b]
        out.flat += sum(flat)
        if not g.dynamic_sampling:
            kept = scored
            break
        kept += [s for s, f in zip(scored, flat) if not f]
    _stop_on_failing_rewards(run, step, out)
    if g.dynamic_sampling and out.drawn:
        share = len(kept) / out.drawn
        run.keep_share = share if run.keep_share is None else 0.5 * (run.keep_share + share)
    # a refill can overshoot: the batch stays at prompts_per_step groups (the learner's time is bounded)
    out.scored = kept if not g.dynamic_sampling else kept[:want]
    return out


def first_draw(want: int, keep_share: float | None) -> int:
    """Prompts to draw first in a dynamic-sampling step: ``want`` over the share of groups the previous steps kept
    (a running mean; at least a quarter), ``want`` on the first step.

    >>> first_draw(4, None), first_draw(4, 1.0), first_draw(4, 0.46), first_draw(4, 0.1)
    (4, 4, 9, 16)
    """
    return want if keep_share is None else int(want / max(keep_share, 0.25) + 0.999)


def _count_failures(run: _Run, out: StepRollouts, scores: RewardScores) -> None:
    out.samples += len(scores.total)
    for label, n in scores.failures.items():
        run.failures[label] = run.failures.get(label, 0) + n
        out.failed[label] = out.failed.get(label, 0) + n
        if n and label not in out.errors and scores.errors.get(label):
            out.errors[label] = scores.errors[label][0]


def _stop_on_failing_rewards(run: _Run, step: int, out: StepRollouts) -> None:
    """A reward that failed on every sample of ``reward_fail_steps`` consecutive steps stops the run (exit 2):
    a reward that never scores must never train silently. The last checkpoint is untouched."""
    limit = run.cfg.reward_fail_steps
    for label in run.reward_set.labels:
        all_failed = out.samples > 0 and out.failed.get(label, 0) >= out.samples
        run.all_failed_steps[label] = run.all_failed_steps.get(label, 0) + 1 if all_failed else 0
        if run.all_failed_steps[label] >= limit:
            steps = f"{limit} steps in a row up to step {step + 1}" if limit > 1 else f"step {step + 1}"
            raise UserError(f"reward '{label}' failed on every sample of {steps} ({out.failed[label]} of {out.samples}; "
                            f"first: {out.errors.get(label, 'no message')}); stopping — the last checkpoint is intact")


def _sync(run: _Run) -> dict[str, float]:
    state = {} if getattr(run.backend, "shares_model", False) else trainable_state(run.policy.model)
    return run.backend.sync(state, run.learner.version)


def _cursor(run: _Run) -> int:
    # prompts already submitted for the next step (pipeline) are drawn again after a resume
    return run.pending[0][0].index if run.pending else run.stream.cursor


def _save(run: _Run, steps_done: int) -> Path:
    return save_checkpoint(run.run_dir, steps_done, run.policy, run.learner.state_dict(), _cursor(run),
                           keep=run.cfg.checkpoint.keep, prompt=run.cfg.data.prompt_record(),
                           extra={"keep_share": run.keep_share})  # a resumed run draws as the uninterrupted one


def _finish(run: _Run) -> Path:
    if run.cfg.checkpoint.every:
        _save(run, run.cfg.grpo.steps)
    adapter_dir = run.run_dir / "adapter"
    save_adapter(run.policy, adapter_dir, run.cfg.data.prompt_record())
    return adapter_dir


def _record(run: _Run, o: StepOutcome) -> dict[str, Any]:
    """The step's metrics record, with the backend's events; notes in the live view for events and skipped updates."""
    record = step_record(o, run.reward_set.labels, accuracy_label(run.cfg.rewards), run.cfg.grpo.beta > 0,
                         run.learner.version, run.stream.cursor, run.failures)
    events = run.backend.events()
    if events:
        record["events"] = events
        for e in events:
            run.view.note(f"[cyan]{e}[/cyan]")
    skipped = o.stats.skipped
    if skipped and skipped != "no learning signal (every advantage is 0)":
        run.view.note(f"[red]step {o.step + 1}: update skipped: {skipped}[/red] (the adapter is unchanged)")
    return record


# ----------------------------------------------------------------------------- set-up


def _setup(cfg: GRPOJobConfig, reward_set: RewardSet | None, policy: Policy | None, backend: Any,
           resume: str | Path | None, live: bool | None, claimed: bool, inputs: Inputs | None) -> _Run:
    inputs = inputs or load_inputs(cfg, reward_set)
    data, reward_set, from_config = inputs.data, inputs.reward_set, inputs.from_config
    run_dir, ckpt = _open_run_dir(cfg, resume, claimed)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    try:
        return _build(cfg, run_dir, ckpt, data, reward_set, from_config, policy, backend, live)
    except BaseException:
        if resume is None and not claimed:  # a run that failed before writing anything leaves no empty folder
            release_if_unused(run_dir)
        raise


def _build(cfg: GRPOJobConfig, run_dir: Path, ckpt: Checkpoint | None, data: Dataset, reward_set: Any,
           from_config: bool, policy: Policy | None, backend: Any, live: bool | None) -> _Run:
    """Policy, learner, data stream, rollout backend, logs: everything the loop holds (restored on resume)."""
    init_adapter = cfg.init_adapter or cfg.model.adapter
    if cfg.warm_start is not None and policy is None:
        init_adapter = str(warm_start(cfg.warm_start, run_dir / "sft", live=live))
    torch.manual_seed(cfg.seed)  # fresh LoRA initialisation is reproducible
    if policy is None:
        policy = policy_from_config(cfg.model, adapter=init_adapter, trainable=True)
    g = cfg.grpo
    learner = Learner(policy, g, total_steps=g.steps * g.mu, reference=g.kl_reference,
                      dense_base=None if g.dense_base else False)
    stream = PromptStream(len(data), seed=cfg.seed)
    if ckpt is not None:
        load_adapter_into(policy.model, ckpt.adapter_dir)
        learner.load_state_dict(ckpt.learner)
        stream.cursor = ckpt.cursor
        restore_rng(ckpt.rng)
        restore_logs(ckpt, run_dir)
    if backend is None:
        backend = make_backend(cfg.distributed, cfg.model, cfg.sampling, cfg.seed, init_adapter, policy=policy)
    if not getattr(backend, "shares_model", False):  # remote samplers start from exactly the learner's adapter
        backend.sync(trainable_state(policy.model), learner.version)
    elif hasattr(backend, "worker"):
        backend.worker.set_version(learner.version)
    if from_config and cfg.distributed.reward_tasks:  # Ray is up now (the backend started it)
        reward_set = RayRewardSet(list(cfg.rewards), timeout_s=cfg.reward_timeout_s, shares=cfg.distributed.workers,
                                  options=cfg.reward_sandbox.options())
    start = ckpt.step if ckpt is not None else 0
    log = MetricsLog(run_dir, correct_key=reward_key(accuracy_label(cfg.rewards)), format_key=reward_key(format_label(cfg.rewards)),
                     max_new_tokens=cfg.sampling.max_new_tokens, tensorboard=cfg.log.tensorboard)
    view = LiveView(g.steps, start, "GRPO", grpo_columns(reward_set.labels), enabled=cfg.log.live if live is None else live)
    if ckpt is not None:
        view.note(f"resumed {run_dir} at step {start} (data cursor {ckpt.cursor})")
    run = _Run(cfg, run_dir, data, stream, reward_set, policy, learner, backend, log, view, start)
    run.keep_share = ckpt.extra.get("keep_share") if ckpt is not None else None
    return run


def _open_run_dir(cfg: GRPOJobConfig, resume: str | Path | None, claimed: bool) -> tuple[Path, Checkpoint | None]:
    """The run folder and the checkpoint to resume from. Fresh: a folder of its own (``claimed``: the job
    pipeline made it already), with the config written. Resumed: the newest intact checkpoint, the config
    checked against the run's (only safe keys may change) and the resume recorded in ``config.yaml``."""
    if resume is not None:
        run_dir = Path(resume)
        ckpt = latest_checkpoint(run_dir)
        if not claimed:
            config = to_dict(cfg)
            record_resume(run_dir, config, ckpt.step, check_resume(run_dir, config))
        return run_dir, ckpt
    run_dir = claimed_run_dir(cfg.run_dir) if claimed and cfg.run_dir else claim_run_dir("grpo", cfg.run_dir)
    write_config(run_dir, to_dict(dataclasses.replace(cfg, run_dir=str(run_dir))))
    for name in ("metrics.jsonl", "samples.jsonl"):  # a claimed folder may hold the logs of a killed attempt
        (run_dir / name).unlink(missing_ok=True)
    return run_dir, None
