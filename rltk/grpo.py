"""GRPO: the job config and the training loop.

One step, top to bottom (:func:`train`):

1. **rollout** — draw ``prompts_per_step`` prompts, sample ``G`` completions each (a rollout
   backend: in-process :class:`LocalRollouts` sharing the learner's model, or Ray workers);
2. **reward** — score every completion with the run's :class:`rewards.RewardSet` (each
   component kept); with ``dynamic_sampling`` (DAPO) groups whose rewards are all equal are
   dropped and more prompts are drawn until the batch is full;
3. **advantage** — group-relative (or ``dr_grpo``, ``rloo``, ``batch_std``) per group;
4. **learner step** — clipped surrogate (+ KL), ``mu`` optimizer steps, new adapter to the samplers;
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

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Protocol, Sequence

import torch

from rewards import RewardScores, RewardSet, RewardSpec
from rltk.advantages import compute_advantages, zero_variance_groups
from rltk.checkpoint import latest_checkpoint, load_adapter_into, restore_logs, save_checkpoint
from rltk.core.config import to_dict
from rltk.data import DataConfig, Dataset, PromptStream, load_dataset
from rltk.core.errors import UserError
from rltk.core.seeds import restore_rng, step_seed
from rltk.learner import Learner, LossConfig, OptimConfig, TrainBatch, UpdateStats
from rltk.loss import BatchTotals
from rltk.metrics import LiveView, MetricsLog, grpo_columns
from rltk.models import ModelConfig, Policy, policy_from_config, trainable_state
from rltk.rollouts import DistributedConfig, PromptRequest, RolloutGroup, SamplingConfig, make_backend

# ----------------------------------------------------------------------------- config


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
    from rltk.core.config import load_config

    cfg = load_config(GRPOJobConfig, path, list(overrides))
    if cfg.warm_start is not None and not Path(cfg.warm_start).is_absolute():
        cfg = dataclasses.replace(cfg, warm_start=str(Path(path).parent / cfg.warm_start))
    return cfg


# ----------------------------------------------------------------------------- pure helpers


@dataclass
class ScoredGroup:
    group: RolloutGroup
    rewards: list[float]  # [G] total reward
    components: dict[str, list[float | None]]  # label -> [G]


def score_groups(reward_set: RewardSet, groups: Sequence[RolloutGroup],
                 prompts: Sequence[Any] | None = None) -> tuple[list[ScoredGroup], RewardScores]:
    """One ``RewardSet.score`` call over every completion of ``groups``: each row's columns (and its chat
    prompt as ``prompts``, and the completion's token ids as ``completion_ids``) repeated per completion."""
    texts = [t for g in groups for t in g.texts]
    columns: dict[str, list[Any]] = {}
    keys = sorted({k for g in groups for k in g.row})
    for k in keys:
        columns[k] = [g.row.get(k) for g in groups for _ in g.texts]
    if prompts is not None:
        columns["prompts"] = [p for p, g in zip(prompts, groups) for _ in g.texts]
    columns["completion_ids"] = [c for g in groups for c in g.completion_ids]
    scores = reward_set.score(texts, **columns)
    out, i = [], 0
    for g in groups:
        n = len(g.texts)
        out.append(ScoredGroup(g, list(scores.total[i:i + n]), {k: list(v[i:i + n]) for k, v in scores.components.items()}))
        i += n
    return out, scores


def build_train_batch(scored: Sequence[ScoredGroup], advantages: torch.Tensor, learner_version: int,
                      mask_truncated: bool, max_new_tokens: int) -> TrainBatch:
    """Flatten groups into the learner's batch. ``advantages`` [B, G]. Truncated completions are
    left out entirely when ``mask_truncated`` (no loss, not in the normalisers); rollouts sampled by
    an older adapter carry their sampler log-probs (the importance ratio's denominator)."""
    prompts, comps, advs, behaviour, lengths = [], [], [], [], []
    for b, s in enumerate(scored):
        g = s.group
        stale = g.policy_version != learner_version
        for j, ids in enumerate(g.completion_ids):
            if mask_truncated and g.truncated[j]:
                continue
            prompts.append(g.prompt_ids)
            comps.append(ids)
            advs.append(float(advantages[b, j]))
            behaviour.append(g.logprobs[j] if stale else None)
            lengths.append(len(ids))
    totals = BatchTotals(sequences=sum(1 for n in lengths if n > 0), tokens=sum(lengths), max_tokens=max_new_tokens)
    return TrainBatch(prompts, comps, advs, behaviour, totals)


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [float(x) for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def accuracy_label(specs: Sequence[RewardSpec]) -> str | None:
    """The component that says "correct" (math_answer, or a component labelled 'correct')."""
    for s in specs:
        if s.name == "math_answer" or s.key == "correct":
            return s.key
    return None


def format_label(specs: Sequence[RewardSpec]) -> str | None:
    for s in specs:
        if s.name in ("format_answer", "think_format") or s.key == "format":
            return s.key
    return None


class PhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"generate": 0.0, "reward": 0.0, "learn": 0.0}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0


# ----------------------------------------------------------------------------- the run


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


def train(cfg: GRPOJobConfig, *, reward_set: RewardSet | None = None, policy: Policy | None = None,
          backend: Any = None, resume: str | Path | None = None, live: bool | None = None) -> GRPOResult:
    """Run (or resume) GRPO as configured; returns the run folder, the final adapter and the history."""
    run = _setup(cfg, reward_set, policy, backend, resume, live)
    g = cfg.grpo
    try:
        for step in range(run.start_step, g.steps):
            timer = PhaseTimer()
            # 1-2. rollout + reward: G completions per prompt, scored (dynamic sampling refills the batch)
            scored, drawn, flat = _rollout_and_score(run, step, timer)
            # 3. advantage: one per completion, relative to its group
            rewards = torch.tensor([s.rewards for s in scored], dtype=torch.float32)  # [B, G]
            finite = bool(torch.isfinite(rewards).all()) if scored else True
            advantages = compute_advantages(g.advantage, rewards) if scored and finite else torch.zeros_like(rewards)  # [B, G]
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
                                              cfg.sampling.max_new_tokens)
                    stats = run.learner.grpo_update(batch, g.loss(cfg.sampling.temperature), step)
                sync = _sync(run) if stats.applied else {}
            # 5. log, checkpoint
            record = _record(run, step, scored, drawn, flat, rewards, stats, sync, timer, stale)
            run.view.update(record, run.log.log(record))
            if cfg.log.samples_every and (step + 1) % cfg.log.samples_every == 0:
                run.log.log_samples(_samples(step + 1, scored, advantages, cfg.log.samples_groups))
            if cfg.checkpoint.every and (step + 1) % cfg.checkpoint.every == 0 and step + 1 < g.steps:
                _save(run, step + 1)
        adapter_dir = _finish(run)
    finally:
        run.view.close()
        run.backend.close()
    return GRPOResult(run.run_dir, adapter_dir, run.log.history, run.policy, g.steps)


# ----------------------------------------------------------------------------- loop phases


def _submit(run: _Run, step: int, draw: int, k: int) -> tuple[list[PromptRequest], Any]:
    requests = [PromptRequest(pos, run.data.rows[row], run.data.messages(row)) for pos, row in run.stream.draw(k)]
    return requests, run.backend.submit(requests, step_seed(run.cfg.seed, step, draw))


def _rollout_and_score(run: _Run, step: int, timer: PhaseTimer) -> tuple[list[ScoredGroup], int, int]:
    """Groups for this step, the number of prompts drawn and how many of them had equal rewards.

    Without dynamic sampling every group is kept. With it, groups whose G rewards are all equal are
    dropped and more prompts are drawn (at most ``max_draw_factor x prompts_per_step``), each later
    draw sized by the share kept so far; groups beyond ``prompts_per_step`` are not trained on."""
    g = run.cfg.grpo
    want, budget = g.prompts_per_step, int(g.max_draw_factor * g.prompts_per_step)
    kept: list[ScoredGroup] = []
    drawn, draw, flat_groups = 0, 0, 0
    while len(kept) < want and drawn < budget:
        if draw == 0 and run.pending is not None:
            requests, handle = run.pending
            run.pending = None
        else:
            need = want - len(kept)
            if draw > 0:  # size the refill by the share of groups that had signal so far
                need = int(need / max(len(kept) / drawn, 0.25) + 0.999)
            with timer("generate"):  # in-process backends generate in submit, Ray ones in collect
                requests, handle = _submit(run, step, draw, min(need, budget - drawn))
        with timer("generate"):
            groups = run.backend.collect(handle)
        with timer("reward"):
            scored, scores = score_groups(run.reward_set, groups, [r.messages for r in requests])
        for label, n in scores.failures.items():
            run.failures[label] = run.failures.get(label, 0) + n
        drawn += len(requests)
        draw += 1
        flat = zero_variance_groups(torch.tensor([s.rewards for s in scored])).tolist() if scored else []  # [b]
        flat_groups += sum(flat)
        if not g.dynamic_sampling:
            return scored, drawn, flat_groups
        kept += [s for s, f in zip(scored, flat) if not f]
    # a refill can overshoot: the batch stays at prompts_per_step groups (the learner's time is bounded)
    return kept[:want], drawn, flat_groups


def _sync(run: _Run) -> dict[str, float]:
    state = {} if getattr(run.backend, "shares_model", False) else trainable_state(run.policy.model)
    return run.backend.sync(state, run.learner.version)


def _record(run: _Run, step: int, scored: Sequence[ScoredGroup], drawn: int, flat: int, rewards: torch.Tensor,
            stats: UpdateStats, sync: dict[str, float], timer: PhaseTimer, stale: int) -> dict[str, Any]:
    cfg = run.cfg
    comps = [c for s in scored for c in s.group.completion_ids]
    truncated = [t for s in scored for t in s.group.truncated]
    gen_tokens = sum(len(c) for c in comps)
    total_s = sum(timer.seconds.values())
    r: dict[str, Any] = {
        "step": step + 1,
        "reward_mean": float(rewards.mean()) if rewards.numel() else None,
        "reward_std": float(rewards.std()) if rewards.numel() > 1 else None,
    }
    labels = run.reward_set.labels
    for label in labels:
        r[f"reward/{label}"] = _mean([v for s in scored for v in s.components.get(label, [])])
    acc = accuracy_label(cfg.rewards)
    r["accuracy"] = r.get(f"reward/{acc}") if acc else None
    r.update({
        "kl": stats.kl if cfg.grpo.beta > 0 else None,  # beta = 0: no reference forward, KL not measured
        "clip_fraction": stats.clip_fraction, "loss": stats.loss, "grad_norm": stats.grad_norm,
        "lr": stats.lr, "skipped": stats.skipped, "optimizer_steps": stats.applied,
        "completion_len": gen_tokens / len(comps) if comps else None,
        "truncation_rate": sum(truncated) / len(truncated) if truncated else None,
        "groups": len(scored), "prompts_drawn": drawn,
        "zero_variance_share": flat / drawn if drawn else None,  # of the groups drawn (dynamic sampling drops them)
        "sequences_learned": stats.sequences, "learn_tokens": stats.tokens,
        "generated_tokens": gen_tokens,
        "tokens_per_s": gen_tokens / timer.seconds["generate"] if timer.seconds["generate"] > 0 else None,
        "seconds/generate": timer.seconds["generate"], "seconds/reward": timer.seconds["reward"],
        "seconds/learn": timer.seconds["learn"], "seconds/step": total_s,
        "policy_version": run.learner.version, "stale_groups": stale, "cursor": run.stream.cursor,
    })
    for label in labels:
        r[f"reward_failures/{label}"] = run.failures.get(label, 0)
    r.update({k: v for k, v in sync.items()})
    events = run.backend.events()
    if events:
        r["events"] = events
        for e in events:
            run.view.note(f"[cyan]{e}[/cyan]")
    if stats.skipped and stats.skipped != "no learning signal (every advantage is 0)":
        run.view.note(f"[red]step {step + 1}: update skipped: {stats.skipped}[/red] (the adapter is unchanged)")
    return r


def _samples(step: int, scored: Sequence[ScoredGroup], advantages: torch.Tensor, n_groups: int) -> list[dict[str, Any]]:
    out = []
    for b, s in enumerate(scored[:n_groups]):
        for j, text in enumerate(s.group.texts):
            out.append({"step": step, "index": s.group.index, "sample": j, "completion": text,
                        "reward": s.rewards[j], "components": {k: v[j] for k, v in s.components.items()},
                        "advantage": float(advantages[b, j]), "tokens": len(s.group.completion_ids[j]),
                        "truncated": s.group.truncated[j], "row": {k: v for k, v in s.group.row.items() if k != "solution"}})
    return out


def _cursor(run: _Run) -> int:
    # prompts already submitted for the next step (pipeline) are drawn again after a resume
    return run.pending[0][0].index if run.pending else run.stream.cursor


def _save(run: _Run, steps_done: int) -> Path:
    return save_checkpoint(run.run_dir, steps_done, run.policy.model, run.learner.state_dict(), _cursor(run),
                           keep=run.cfg.checkpoint.keep)


def _finish(run: _Run) -> Path:
    if run.cfg.checkpoint.every:
        _save(run, run.cfg.grpo.steps)
    adapter_dir = run.run_dir / "adapter"
    run.policy.model.save_pretrained(str(adapter_dir))
    return adapter_dir


# ----------------------------------------------------------------------------- the job: evals around SFT and GRPO

STAGES = ("base", "sft", "grpo")


@dataclass
class JobResult:
    run_dir: Path
    summary: dict[str, Any]
    grpo: GRPOResult
    evals: dict[str, dict[str, Any]]  # stage -> {"greedy": EvalResult, "sampled": EvalResult | None}


def run_job(cfg: GRPOJobConfig, *, resume: str | Path | None = None, live: bool | None = None,
            reward_set: RewardSet | None = None) -> JobResult:
    """The main-job pipeline: [eval base] -> [SFT warm start -> eval] -> GRPO -> [eval] -> summary.

    Evals run when ``eval.enabled`` (held-out items of ``eval.task``: greedy accuracy and format rate,
    and sampled pass@1 over ``eval.samples`` completions at the training temperature), each on the
    same items, compared pairwise with ``evals.compare`` (McNemar / paired bootstrap). Results go to
    ``RUN_DIR/evals/*.json``; a finished stage is not redone when the job is resumed.
    ``RUN_DIR/summary.json`` holds the table; ``RUN_DIR/curves.png`` the GRPO curves.
    """
    t0 = time.perf_counter()
    if resume is not None and not Path(resume).is_dir():
        raise UserError(f"--resume: run folder {resume} does not exist")
    # resuming a job killed before its first GRPO checkpoint redoes only what it had not finished
    run_dir = Path(resume) if resume is not None else Path(cfg.run_dir) if cfg.run_dir else default_run_dir("grpo")
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    run_dir.mkdir(parents=True, exist_ok=True)
    say = LiveView(0, enabled=False).note
    evals: dict[str, dict[str, Any]] = {}
    torch.manual_seed(cfg.seed)
    policy = None
    if cfg.warm_start is not None or cfg.eval.enabled:
        # one policy for the whole job: fresh LoRA (= the base model), then the SFT adapter, then GRPO's
        model_cfg = cfg.model
        if cfg.warm_start is not None:
            from rltk.sft import SFTJobConfig
            from rltk.core.config import load_config

            model_cfg = load_config(SFTJobConfig, cfg.warm_start).model
            if (model_cfg.spec, model_cfg.quant) != (cfg.model.spec, cfg.model.quant):
                raise UserError(f"warm_start {cfg.warm_start}: its model ({model_cfg.spec}, {model_cfg.quant}) differs from "
                                f"this config's model ({cfg.model.spec}, {cfg.model.quant})")
        adapter = cfg.init_adapter or cfg.model.adapter
        policy = policy_from_config(model_cfg, adapter=adapter, trainable=True)
        if cfg.eval.enabled:
            stage = "base" if adapter is None else "start"
            evals[stage] = _eval_stage(cfg, policy, stage, run_dir, live, adapters=adapter is not None)
        if cfg.warm_start is not None:
            from rltk.sft import warm_start

            warm_start(cfg.warm_start, run_dir / "sft", live=live, policy=policy)
            if cfg.eval.enabled:
                evals["sft"] = _eval_stage(cfg, policy, "sft", run_dir, live)
        start = evals.get("sft") or evals.get("start")
        if start is not None:
            fmt = start["greedy"].metrics.get("format_rate")
            if fmt is not None and fmt < cfg.eval.min_format_rate:
                say(f"[yellow]warning:[/yellow] the starting checkpoint answers in the expected format only "
                    f"{100 * fmt:.0f}% of the time (< {100 * cfg.eval.min_format_rate:.0f}%): GRPO will see little "
                    "reward signal (more SFT, or a format reward)")
    grpo = train(cfg, reward_set=reward_set, policy=policy, resume=resume if (run_dir / "checkpoints").is_dir() else None,
                 live=live)
    if cfg.eval.enabled:
        evals["grpo"] = _eval_stage(cfg, grpo.policy, "grpo", run_dir, live)
    summary = _summary(cfg, evals, grpo, time.perf_counter() - t0)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        from rltk.plot import plot_run

        plot_run(run_dir)
    except UserError as e:  # matplotlib missing: the run is still complete
        say(f"[yellow]no plot:[/yellow] {e}")
    return JobResult(run_dir, summary, grpo, evals)


def eval_task(cfg: GRPOJobConfig) -> Any:
    """The job's held-out eval task, with the system prompt ``eval.system_prompt`` picks."""
    from evals import get_task

    e = cfg.eval
    task = get_task(e.task, **e.task_args)
    system = {"data": cfg.data.system_prompt or task.system, "task": task.system}.get(e.system_prompt, e.system_prompt)
    return dataclasses.replace(task, system=system)


def _eval_stage(cfg: GRPOJobConfig, policy: Policy, stage: str, run_dir: Path, live: bool | None,
                adapters: bool = True) -> dict[str, Any]:
    """Greedy (and sampled) eval of ``policy`` as it is now; ``adapters=False`` evaluates the bare base.
    Generation runs on a dense bf16 copy of base + merged LoRA (see ``rltk.rollouts``), freed after."""
    from evals import evaluate, load_result

    from rltk.models import DenseSampler, compute_dtype

    e = cfg.eval
    out = run_dir / "evals"
    out.mkdir(parents=True, exist_ok=True)
    paths = {"greedy": out / f"{stage}_greedy.json", "sampled": out / f"{stage}_sampled.json"}
    sampled = e.samples > 0 and stage in e.sampled_stages
    wanted = ["greedy"] + (["sampled"] if sampled else [])
    if all(paths[k].is_file() for k in wanted):  # a resumed job keeps its finished evals
        return {k: load_result(paths[k]) if k in wanted else None for k in paths}
    task = eval_task(cfg)
    with contextlib.ExitStack() as stack:
        if not adapters and hasattr(policy.model, "disable_adapter"):
            stack.enter_context(policy.model.disable_adapter())
        dense = DenseSampler(policy.model, dtype=compute_dtype(policy.device)) if policy.device.type == "cpu" else None
    target = dataclasses.replace(policy, model=dense.model) if dense is not None else policy
    show = cfg.log.live if live is None else live
    results: dict[str, Any] = {"sampled": None}
    meta = {"stage": stage, "run_dir": str(run_dir)}
    results["greedy"] = evaluate(target, task, limit=e.n, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                                 seed=cfg.seed, progress=show, meta=meta)
    results["greedy"].save(paths["greedy"])
    if sampled:
        results["sampled"] = evaluate(target, task, limit=e.n, n_samples=e.samples, temperature=cfg.sampling.temperature,
                                      top_p=cfg.sampling.top_p, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                                      seed=cfg.seed, progress=show, meta=meta)
        results["sampled"].save(paths["sampled"])
    del dense, target
    return results


def _summary(cfg: GRPOJobConfig, evals: dict[str, dict[str, Any]], grpo: GRPOResult, wall: float) -> dict[str, Any]:
    from evals import compare

    def metric(stage: str, kind: str, key: str) -> float | None:
        r = evals.get(stage, {}).get(kind)
        return None if r is None else r.metrics.get(key)

    stages = [s for s in ("base", "start", "sft", "grpo") if s in evals]
    summary: dict[str, Any] = {
        "accuracy": {s: metric(s, "greedy", "accuracy") for s in stages},
        "format_rate": {s: metric(s, "greedy", "format_rate") for s in stages},
        "pass1_sampled": {s: metric(s, "sampled", "accuracy") for s in stages},
        "n_eval_items": len(evals[stages[0]]["greedy"].records) if stages else 0,
        "eval_samples": cfg.eval.samples,
        "seed": cfg.seed,
        "wall_seconds": wall,
        "grpo_steps": grpo.steps,
        "grpo_seconds": sum(h.get("seconds/step", 0.0) for h in grpo.history),
        "run_dir": str(grpo.run_dir),
        "adapter": str(grpo.adapter_dir),
    }
    before = "sft" if "sft" in evals else "start" if "start" in evals else "base" if "base" in evals else None
    if before and "grpo" in evals:
        greedy = compare(evals[before]["greedy"], evals["grpo"]["greedy"], a_name=before.upper(), b_name="GRPO")
        summary[f"p_value_grpo_vs_{before}"] = greedy.p_value
        summary["verdict_greedy"] = greedy.verdict
        if evals[before]["sampled"] is not None and evals["grpo"]["sampled"] is not None:
            sampled = compare(evals[before]["sampled"], evals["grpo"]["sampled"], a_name=before.upper(), b_name="GRPO")
            summary[f"p_value_pass1_grpo_vs_{before}"] = sampled.p_value
            summary[f"p_wilcoxon_pass1_grpo_vs_{before}"] = sampled.p_wilcoxon
            summary["verdict_pass1"] = sampled.verdict
    if "base" in evals and "sft" in evals:
        summary["p_value_sft_vs_base"] = compare(evals["base"]["greedy"], evals["sft"]["greedy"]).p_value
    return summary


# ----------------------------------------------------------------------------- set-up


def default_run_dir(kind: str) -> Path:
    return Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def _setup(cfg: GRPOJobConfig, reward_set: RewardSet | None, policy: Policy | None, backend: Any,
           resume: str | Path | None, live: bool | None) -> _Run:
    import yaml

    # data and rewards first: a bad row or reward fails before any model is loaded
    data = load_dataset(cfg.data)
    data.check_for_prompts()
    if reward_set is None:
        if not cfg.rewards:
            raise UserError("rewards: the config lists no rewards (add e.g. '- name: math_answer')")
        reward_set = RewardSet(list(cfg.rewards), timeout_s=cfg.reward_timeout_s)
    data.check_rewards(reward_set)
    run_dir = Path(resume) if resume is not None else Path(cfg.run_dir) if cfg.run_dir else default_run_dir("grpo")
    ckpt = latest_checkpoint(run_dir) if resume is not None else None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    if ckpt is None:
        for name in ("metrics.jsonl", "samples.jsonl"):  # a fresh run in an existing folder starts new logs
            (run_dir / name).unlink(missing_ok=True)

    init_adapter = cfg.init_adapter or cfg.model.adapter
    if cfg.warm_start is not None and policy is None:
        from rltk.sft import warm_start

        init_adapter = str(warm_start(cfg.warm_start, run_dir / "sft", live=live))
    torch.manual_seed(cfg.seed)  # fresh LoRA initialisation is reproducible
    if policy is None:
        policy = policy_from_config(cfg.model, adapter=init_adapter, trainable=True)
    g = cfg.grpo
    learner = Learner(policy, g.optim(), total_steps=g.steps * g.mu, reference=g.kl_reference,
                      dense_base=None if g.dense_base else False)
    stream = PromptStream(len(data), seed=cfg.seed)
    start = 0
    if ckpt is not None:
        load_adapter_into(policy.model, ckpt.adapter_dir)
        learner.load_state_dict(ckpt.learner)
        stream.cursor = ckpt.cursor
        restore_rng(ckpt.rng)
        restore_logs(ckpt, run_dir)
        start = ckpt.step
    if backend is None:
        backend = make_backend(cfg.distributed, cfg.model, cfg.sampling, cfg.seed, init_adapter, policy=policy)
    if not getattr(backend, "shares_model", False):  # remote samplers start from exactly the learner's adapter
        backend.sync(trainable_state(policy.model), learner.version)
    elif hasattr(backend, "worker"):
        backend.worker.set_version(learner.version)
    log = MetricsLog(run_dir, correct_key=_key(accuracy_label(cfg.rewards)), format_key=_key(format_label(cfg.rewards)),
                     max_new_tokens=cfg.sampling.max_new_tokens)
    view = LiveView(g.steps, start, "GRPO", grpo_columns(reward_set.labels), enabled=cfg.log.live if live is None else live)
    if ckpt is not None:
        view.note(f"resumed {run_dir} at step {start} (data cursor {ckpt.cursor})")
    return _Run(cfg, run_dir, data, stream, reward_set, policy, learner, backend, log, view, start)


def _key(label: str | None) -> str | None:
    return f"reward/{label}" if label else None


__all__ = [
    "CheckpointConfig",
    "EvalConfig",
    "GRPOConfig",
    "GRPOJobConfig",
    "GRPOResult",
    "LogConfig",
    "ScoredGroup",
    "build_train_batch",
    "score_groups",
    "step_seed",
    "JobResult",
    "load_job_config",
    "run_job",
    "train",
]
