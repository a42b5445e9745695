"""The main-job pipeline around GRPO: [eval base] -> [SFT warm start -> eval] -> GRPO -> [eval] -> summary.

``rltk grpo CONFIG`` and ``rltk demo`` run :func:`run_job`; with ``eval.enabled`` every stage is evaluated on
the same held-out items and compared pairwise (``evals.compare``), and ``summary.json`` holds the table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from evals import compare, evaluate, get_task, load_result
from evals.reasoning import compare_reasoning
from evals.task_metrics import compare_task_metrics
from rewards import RewardSet
from rltk.core.config import to_dict
from rltk.core.errors import UserError
from rltk.grpo.config import GRPOJobConfig
from rltk.grpo.inputs import load_inputs
from rltk.grpo.loop import GRPOResult, train
from rltk.metrics import LiveView
from rltk.core.machine import cpu_model, matrix_flags
from rltk.policy import Policy, compute_dtype_choice, default_device, dense_policy, policy_from_config
from rltk.plot import plot_run
from rltk.checkpoint import checkpoint_step, list_checkpoints
from rltk.runs import check_resume, claim_run_dir, record_resume, release_if_unused
from rltk.sft import load_sft_config, warm_start

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
    say = LiveView(0, enabled=False).note
    run_dir = _job_dir(cfg, resume)
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir))
    torch.manual_seed(cfg.seed)
    machine = {"cpu": f"{cpu_model()} ({matrix_flags()})", "threads": torch.get_num_threads(),
               "compute_dtype": compute_dtype_choice().describe() if default_device().type == "cpu" else "cuda"}
    try:
        inputs = load_inputs(cfg, reward_set)  # a bad data source or reward fails now, not after SFT and the evals
        if cfg.eval.enabled:  # so does the eval's own data
            task = eval_task(cfg)
            task.check_rows(task.load(cfg.eval.data))
        say(f"CPU {machine['cpu']}, {machine['threads']} threads; compute dtype {machine['compute_dtype']}")
        policy, evals = _before_grpo(cfg, run_dir, live, say) if cfg.warm_start is not None or cfg.eval.enabled else (None, {})
        grpo = train(cfg, policy=policy, live=live, claimed_dir=True, inputs=inputs,
                     resume=run_dir if resume is not None and list_checkpoints(run_dir) else None)
    except BaseException:
        if resume is None:  # a job that failed before writing anything leaves no empty folder
            release_if_unused(run_dir)
        raise
    if cfg.eval.enabled:
        evals["grpo"] = _eval_stage(cfg, grpo.policy, "grpo", run_dir, live)
    summary = {**_summary(cfg, evals, grpo, time.perf_counter() - t0), "machine": machine}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    try:
        plot_run(run_dir)
    except UserError as e:  # matplotlib missing: the run is still complete
        say(f"[yellow]no plot:[/yellow] {e}")
    return JobResult(run_dir, summary, grpo, evals)


def _job_dir(cfg: GRPOJobConfig, resume: str | Path | None) -> Path:
    """A fresh job's own folder; or the resumed job's, its config checked against the saved one (only safe keys
    may change) and the resume recorded. A job killed before its first GRPO checkpoint redoes only what it had
    not finished (finished evals and the SFT adapter are kept)."""
    if resume is None:
        return claim_run_dir("grpo", cfg.run_dir)
    run_dir = Path(resume)
    if not run_dir.is_dir():
        raise UserError(f"--resume: run folder {resume} does not exist")
    config = to_dict(dataclasses.replace(cfg, run_dir=str(run_dir)))
    found = list_checkpoints(run_dir)
    step = checkpoint_step(found[-1]) if found else 0
    record_resume(run_dir, config, step, check_resume(run_dir, config))
    return run_dir


def _before_grpo(cfg: GRPOJobConfig, run_dir: Path, live: bool | None, say: Any) -> tuple[Policy, dict[str, Any]]:
    """One policy for the whole job: fresh LoRA (= the base model), evaluated; then the SFT adapter, evaluated.
    GRPO continues from it."""
    evals: dict[str, dict[str, Any]] = {}
    model_cfg = cfg.model
    if cfg.warm_start is not None:
        model_cfg = load_sft_config(cfg.warm_start).model
        if (model_cfg.spec, model_cfg.quant) != (cfg.model.spec, cfg.model.quant):
            raise UserError(f"warm_start {cfg.warm_start}: its model ({model_cfg.spec}, {model_cfg.quant}) differs from "
                            f"this config's model ({cfg.model.spec}, {cfg.model.quant})")
    adapter = cfg.init_adapter or cfg.model.adapter
    policy = policy_from_config(model_cfg, adapter=adapter, trainable=True)
    if cfg.eval.enabled:
        stage = "base" if adapter is None else "start"
        evals[stage] = _eval_stage(cfg, policy, stage, run_dir, live, adapters=adapter is not None)
    if cfg.warm_start is not None:
        warm_start(cfg.warm_start, run_dir / "sft", live=live, policy=policy)
        if cfg.eval.enabled:
            evals["sft"] = _eval_stage(cfg, policy, "sft", run_dir, live)
    start = evals.get("sft") or evals.get("start")
    fmt = start["greedy"].metrics.get("format_rate") if start is not None else None
    if fmt is not None and fmt < cfg.eval.min_format_rate:
        say(f"[yellow]warning:[/yellow] the starting checkpoint answers in the expected format only "
            f"{100 * fmt:.0f}% of the time (< {100 * cfg.eval.min_format_rate:.0f}%): GRPO will see little "
            "reward signal (more SFT, or a format reward)")
    return policy, evals


def eval_task(cfg: GRPOJobConfig, name: str | None = None, args: dict[str, Any] | None = None) -> Any:
    """The job's held-out eval task (or the task ``name``), with the system prompt ``eval.system_prompt`` picks."""
    e = cfg.eval
    task = get_task(name or e.task, **(e.task_args if name is None else args or {}))
    system = {"data": cfg.data.system_prompt or task.system, "task": task.system}.get(e.system_prompt, e.system_prompt)
    return dataclasses.replace(task, system=system)


def _eval_stage(cfg: GRPOJobConfig, policy: Policy, stage: str, run_dir: Path, live: bool | None,
                adapters: bool = True) -> dict[str, Any]:
    """Greedy (and sampled) eval of ``policy`` as it is now; ``adapters=False`` evaluates the bare base.
    Generation runs on a dense bf16 copy of base + merged LoRA (see ``rltk.rollouts``), freed after."""
    e = cfg.eval
    out = run_dir / "evals"
    out.mkdir(parents=True, exist_ok=True)
    paths = {"greedy": out / f"{stage}_greedy.json", "sampled": out / f"{stage}_sampled.json"}
    paths.update({extra_name(x): out / f"{stage}_{extra_name(x)}.json" for x in e.extra})
    sampled = e.samples > 0 and stage in e.sampled_stages
    present = _present(e.extra)  # extra evals whose data is there (the others are skipped with a note)
    wanted = ["greedy", *(["sampled"] if sampled else []), *present]
    if all(paths[k].is_file() for k in wanted):  # a resumed job keeps its finished evals
        return {k: load_result(paths[k]) if k in wanted else None for k in paths}
    task = eval_task(cfg)
    with contextlib.ExitStack() as stack:
        if not adapters and hasattr(policy.model, "disable_adapter"):
            stack.enter_context(policy.model.disable_adapter())
        target = dense_policy(policy) if policy.device.type == "cpu" else policy
    show = cfg.log.live if live is None else live
    results: dict[str, Any] = {"sampled": None}
    meta = {"stage": stage, "run_dir": str(run_dir)}
    results["greedy"] = evaluate(target, task, data=e.data, limit=e.n, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                                 decode_threads=e.decode_threads, seed=cfg.seed, progress=show, meta=meta)
    results["greedy"].save(paths["greedy"])
    if sampled:
        results["sampled"] = evaluate(target, task, data=e.data, limit=e.n, n_samples=e.samples, temperature=cfg.sampling.temperature,
                                      top_p=cfg.sampling.top_p, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size,
                                      decode_threads=e.decode_threads, seed=cfg.seed, progress=show, meta=meta)
        results["sampled"].save(paths["sampled"])
    for x in e.extra:  # more held-out tasks, greedy
        name = extra_name(x)
        if name not in present:
            LiveView(0, enabled=False).note(f"[yellow]skipped eval {name}:[/yellow] its data {x['data']} is not there")
            continue
        results[name] = evaluate(target, eval_task(cfg, x["task"], x.get("task_args") or {}), data=x.get("data"),
                                 limit=x.get("n", e.n), max_new_tokens=x.get("max_new_tokens"), batch_size=e.batch_size,
                                 decode_threads=e.decode_threads, seed=cfg.seed, progress=show, meta=meta)
        results[name].save(paths[name])
    del target
    return results


def _present(extra: list[dict[str, Any]]) -> list[str]:
    return [extra_name(x) for x in extra if not x.get("data") or Path(x["data"]).expanduser().exists()]


def extra_name(x: dict[str, Any]) -> str:
    """The name an ``eval.extra`` entry's results go under (its ``name``, else its task)."""
    return str(x.get("name") or x["task"])


def _summary(cfg: GRPOJobConfig, evals: dict[str, dict[str, Any]], grpo: GRPOResult, wall: float) -> dict[str, Any]:
    def metric(stage: str, kind: str, key: str) -> float | None:
        r = evals.get(stage, {}).get(kind)
        return None if r is None else r.metrics.get(key)

    stages = [s for s in ("base", "start", "sft", "grpo") if s in evals]
    summary: dict[str, Any] = {
        "accuracy": {s: metric(s, "greedy", "accuracy") for s in stages},
        "format_rate": {s: metric(s, "greedy", "format_rate") for s in stages},
        "pass1_sampled": {s: metric(s, "sampled", "accuracy") for s in stages},
        **({"score": {s: metric(s, "greedy", "score") for s in stages},
            "score_sampled": {s: metric(s, "sampled", "score") for s in stages}} if _graded(evals, stages) else {}),
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
    summary.update(_reasoning_summary(evals, stages, before))
    summary.update(_task_metrics_summary(evals, stages, before))
    summary.update(_extra_summary(cfg, evals, stages, before))
    return summary


def _reasoning_summary(evals: dict[str, dict[str, Any]], stages: list[str], before: str | None) -> dict[str, Any]:
    """Reasoning validity, lucky answers and steps per completion per stage (greedy and sampled), and GRPO's
    paired comparison with the stage before it on each. None for a graded task (no right answer, e.g. a legal
    summary) none of whose completions wrote an arithmetic step: there is no reasoning to judge."""
    out: dict[str, Any] = {}
    steps = [(evals[s][kind].metrics.get("reasoning") or {}).get("steps_per_completion")
             for s in stages for kind in ("greedy", "sampled") if evals[s].get(kind) is not None]
    if _graded(evals, stages) and not any(steps):
        return out
    for kind, suffix in (("greedy", ""), ("sampled", "_sampled")):
        for key, name in (("validity", "reasoning_validity"), ("lucky", "lucky_answers"), ("steps_per_completion", "steps_per_completion")):
            vals = {s: (evals[s][kind].metrics.get("reasoning") or {}).get(key) for s in stages if evals[s].get(kind) is not None}
            if any(v is not None for v in vals.values()):
                out[name + suffix] = vals
        if before and "grpo" in evals and evals[before].get(kind) is not None and evals["grpo"].get(kind) is not None:
            for c in compare_reasoning(evals[before][kind], evals["grpo"][kind], a_name=before.upper(), b_name="GRPO"):
                out[f"verdict_{c.metric.replace(' ', '_')}{suffix}"] = c.verdict
    return out


def _graded(evals: dict[str, dict[str, Any]], stages: list[str]) -> bool:
    return any("score" in evals[s]["greedy"].metrics for s in stages)


def _task_metrics_summary(evals: dict[str, dict[str, Any]], stages: list[str], before: str | None) -> dict[str, Any]:
    """The task's own metrics (e.g. the legal ones) per stage, greedy: mean and 95% interval; and the paired
    comparisons SFT vs base and GRPO vs the stage before it on each."""
    per: dict[str, dict[str, Any]] = {}
    for s in stages:
        for name, v in (evals[s]["greedy"].metrics.get("task_metrics") or {}).items():
            per.setdefault(name, {})[s] = {"mean": v["mean"], "ci": v["ci"]}
    if not per:
        return {}
    out: dict[str, Any] = {"task_metrics": per}
    pairs = [(a, b) for a, b in (("base", "sft"), (before, "grpo")) if a in evals and b in evals and a != b]
    for a, b in pairs:
        cs = compare_task_metrics(evals[a]["greedy"], evals[b]["greedy"], a_name=a.upper(), b_name=b.upper())
        out[f"task_metric_verdicts_{b}_vs_{a}"] = {c.metric: c.verdict for c in cs}
        out[f"task_metric_p_{b}_vs_{a}"] = {c.metric: c.p_value for c in cs}
    return out


def _extra_summary(cfg: GRPOJobConfig, evals: dict[str, dict[str, Any]], stages: list[str], before: str | None) -> dict[str, Any]:
    """Greedy accuracy of each ``eval.extra`` task per stage, and GRPO vs the stage before it."""
    extra: dict[str, Any] = {}
    for x in cfg.eval.extra:
        name = extra_name(x)
        got = {s: evals[s][name] for s in stages if evals[s].get(name) is not None}
        if not got:  # skipped: its data is not there
            continue
        row: dict[str, Any] = {"accuracy": {s: r.metrics.get("accuracy") for s, r in got.items()},
                               "n_items": len(next(iter(got.values())).records)}
        if before in got and "grpo" in got:
            row["verdict"] = compare(got[before], got["grpo"], a_name=before.upper(), b_name="GRPO").verdict
        extra[name] = row
    return {"extra": extra} if extra else {}
