"""The training CLI: every shipped example config loads, bad input exits 2 with one line, plot/sft run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltk.cli import main
from rltk.core.config import load_config
from rltk.grpo import GRPOJobConfig, load_job_config
from rltk.sft import SFTJobConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_OPTIONAL_PEERS = ("trl", "math_verify")


def _kind(path: Path) -> type:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# rltk "), f"{path} must start with a comment giving the command that runs it"
    return {"sft": SFTJobConfig, "grpo": GRPOJobConfig}[first.split()[2]]


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.yaml")), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_every_example_config_loads_and_validates(path):
    kind = _kind(path)
    cfg = load_job_config(path) if kind is GRPOJobConfig else load_config(kind, path)
    assert isinstance(cfg, kind)
    if kind is GRPOJobConfig:
        from rewards import RewardSet

        for peer in _OPTIONAL_PEERS:  # an example of a peer's rewards needs that peer (the `peers` extra)
            if any(r.name.startswith(peer + ".") for r in cfg.rewards):
                pytest.importorskip(peer)

        RewardSet(list(cfg.rewards))  # every reward exists and its params are valid
        if cfg.warm_start:
            assert load_config(SFTJobConfig, cfg.warm_start).model.spec == cfg.model.spec


def test_the_demo_config_is_the_main_job():
    cfg = load_job_config(EXAMPLES / "arithmetic" / "grpo.yaml")
    assert cfg.model.spec == "smollm2-135m" and cfg.model.quant == "nf4"
    assert cfg.eval.enabled and cfg.eval.n >= 300 and cfg.warm_start
    assert {r.name for r in cfg.rewards} >= {"math_answer", "format_answer"}


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_unknown_key_and_bad_type_exit_2_with_one_line(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("grpo:\n  stepz: 3\n")
    code, _, err = _run(["grpo", str(cfg)], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "unknown key 'grpo.stepz' (did you mean 'grpo.steps'?)" in err
    code, _, err = _run(["sft", str(EXAMPLES / "arithmetic" / "sft.yaml"), "sft.lr=fast"], capsys)
    assert code == 2 and "key 'sft.lr' must be a number" in err
    code, _, err = _run(["grpo", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "config file not found" in err


def test_resume_of_a_job_killed_before_its_first_checkpoint(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {spec: tiny-random, quant: none}\nrewards: [{name: format_answer}]\nlog: {live: false}\n"
                   "sampling: {group_size: 2, max_new_tokens: 4}\n")
    code, _, err = _run(["grpo", str(cfg), "grpo.steps=1", "--resume", str(tmp_path / "typo")], capsys)
    assert code == 2 and "run folder" in err and "does not exist" in err
    (tmp_path / "run").mkdir()  # killed before any checkpoint: the job runs in that folder
    code, _, err = _run(["grpo", str(cfg), "grpo.steps=1", "--resume", str(tmp_path / "run")], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()


def test_a_job_with_bad_grpo_data_fails_before_any_model_eval_or_sft(tmp_path, capsys, monkeypatch):
    from rltk.grpo import job

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the GRPO data was checked")

    monkeypatch.setattr(job, "policy_from_config", no_model)
    sft = tmp_path / "sft.yaml"
    sft.write_text("model: {spec: tiny-random, quant: none}\ndata: {source: arithmetic, limit: 16}\nsft: {steps: 1}\n")
    cfg = tmp_path / "c.yaml"  # too many distinct 2-step problems with numbers <= 10: found by the job at once
    cfg.write_text(f"model: {{spec: tiny-random, quant: none}}\nwarm_start: {sft}\nrewards: [{{name: format_answer}}]\n"
                   "data: {source: word_problems, limit: 5000, options: {steps: '2', max_number: 10}}\n"
                   "eval: {enabled: true, task: arithmetic, n: 4}\nlog: {live: false}\n"
                   f"run_dir: {tmp_path / 'run'}\n")
    code, _, err = _run(["grpo", str(cfg)], capsys)
    assert code == 2 and "data: word_problems: cannot draw 5000 distinct" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "run" / "evals").exists() and not (tmp_path / "run" / "sft").exists()


def test_sft_then_grpo_from_its_adapter_then_plot(tmp_path, capsys):
    sft = tmp_path / "sft.yaml"
    sft.write_text(
        "# rltk sft sft.yaml\n"
        "model: {spec: tiny-random, quant: none, lora: {r: 4, alpha: 8}}\n"
        "data: {source: arithmetic, limit: 16}\n"
        "sft: {steps: 2, batch_size: 4}\n"
        f"log: {{live: false}}\nrun_dir: {tmp_path / 'sft_run'}\n")
    code, out, err = _run(["sft", str(sft)], capsys)
    assert code == 0, err
    assert "adapter" in out and (tmp_path / "sft_run" / "adapter" / "adapter_config.json").is_file()
    grpo = tmp_path / "grpo.yaml"
    grpo.write_text(
        "model: {spec: tiny-random, quant: none}\n"
        f"init_adapter: {tmp_path / 'sft_run' / 'adapter'}\n"
        "data: {source: arithmetic, limit: 16}\n"
        "sampling: {group_size: 2, max_new_tokens: 4}\n"
        "grpo: {steps: 2, prompts_per_step: 2}\n"
        "rewards: [{name: format_answer, label: format}, {name: math_answer, label: correct}]\n"
        f"log: {{live: false}}\nrun_dir: {tmp_path / 'grpo_run'}\n")
    code, out, err = _run(["grpo", str(grpo), "grpo.steps=3"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "grpo_run" / "summary.json").read_text())
    assert summary["grpo_steps"] == 3 and summary["seed"] == 0 and "wall_seconds" in summary
    assert len((tmp_path / "grpo_run" / "metrics.jsonl").read_text().splitlines()) == 3
    assert (tmp_path / "grpo_run" / "curves.png").is_file()  # the job draws its curves
    code, out, err = _run(["plot", str(tmp_path / "grpo_run"), "--out", str(tmp_path / "c.png")], capsys)
    assert code == 0 and (tmp_path / "c.png").stat().st_size > 10_000
    code, _, err = _run(["plot", str(tmp_path)], capsys)
    assert code == 2 and "no metrics.jsonl" in err


def test_the_job_pipeline_evals_sft_grpo_and_summary(tmp_path, capsys):
    """base eval -> SFT warm start -> eval -> GRPO -> eval -> summary.json, on the tiny model; resuming
    the finished job redoes nothing."""
    (tmp_path / "sft.yaml").write_text(
        "# rltk sft sft.yaml\n"
        "model: {spec: tiny-random, quant: none, lora: {r: 4, alpha: 8}}\n"
        "data: {source: arithmetic, limit: 16, ops: '+-'}\n"
        "sft: {steps: 2, batch_size: 4}\nlog: {live: false}\n")
    (tmp_path / "grpo.yaml").write_text(
        "# rltk grpo grpo.yaml\n"
        "model: {spec: tiny-random, quant: none, lora: {r: 4, alpha: 8}}\n"
        "warm_start: sft.yaml\n"
        "data: {source: arithmetic, limit: 16, ops: '+-'}\n"
        "sampling: {group_size: 2, max_new_tokens: 4}\n"
        "grpo: {steps: 2, prompts_per_step: 2}\n"
        "rewards: [{name: math_answer, label: correct}, {name: format_answer, label: format}]\n"
        "eval: {enabled: true, n: 6, samples: 2, max_new_tokens: 4, sampled_stages: [sft, grpo],\n"
        "       extra: [{task: arithmetic, name: arith_mul, task_args: {ops: '*'}, n: 3},\n"
        "               {task: gsm8k, data: not-there.jsonl, n: 3}]}\n"
        f"log: {{live: false}}\nrun_dir: {tmp_path / 'job'}\n")
    code, out, err = _run(["grpo", str(tmp_path / "grpo.yaml")], capsys)
    assert code == 0, err
    job = tmp_path / "job"
    summary = json.loads((job / "summary.json").read_text())
    assert set(summary["accuracy"]) == set(summary["format_rate"]) == {"base", "sft", "grpo"}
    assert summary["pass1_sampled"]["base"] is None and summary["pass1_sampled"]["grpo"] is not None
    assert summary["n_eval_items"] == 6 and summary["seed"] == 0 and summary["wall_seconds"] > 0
    assert 0 <= summary["p_value_grpo_vs_sft"] <= 1 and 0 <= summary["p_value_pass1_grpo_vs_sft"] <= 1
    assert (job / "sft" / "adapter" / "adapter_config.json").is_file() and (job / "curves.png").is_file()
    assert "held-out eval (6 items, seed 0)" in out
    assert set(summary["reasoning_validity"]) == {"base", "sft", "grpo"}  # every eval checks the steps
    curves = [json.loads(x) for x in (job / "metrics.jsonl").read_text().splitlines()]
    assert all(0 <= c["reasoning_validity"] <= 1 and c["steps_per_completion"] >= 0 for c in curves)  # and training
    assert all(0 <= v <= 1 for v in summary["reasoning_validity"].values())
    assert "verdict_reasoning_validity_sampled" in summary and "steps_per_completion_sampled" in summary
    extra = summary["extra"]["arith_mul"]  # the extra task, greedy at every stage, GRPO vs SFT; the missing file skipped
    assert set(extra["accuracy"]) == {"base", "sft", "grpo"} and extra["n_items"] == 3 and "GRPO" in extra["verdict"]
    assert "gsm8k" not in summary["extra"] and "skipped eval gsm8k" in err
    evals = sorted(p.name for p in (job / "evals").iterdir())
    assert evals == ["base_arith_mul.json", "base_greedy.json", "grpo_arith_mul.json", "grpo_greedy.json", "grpo_sampled.json",
                     "sft_arith_mul.json", "sft_greedy.json", "sft_sampled.json"]
    stamps = {p.name: p.stat().st_mtime_ns for p in (job / "evals").iterdir()}
    stamps["sft"] = (job / "sft" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    code, _, err = _run(["grpo", str(tmp_path / "grpo.yaml"), "--resume", str(job)], capsys)
    assert code == 0, err
    again = {p.name: p.stat().st_mtime_ns for p in (job / "evals").iterdir() if p.name.startswith(("base", "sft"))}
    assert all(again[k] == stamps[k] for k in again)  # finished evals are kept
    assert (job / "sft" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == stamps["sft"]  # SFT not redone


def test_demo_and_plot_are_commands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--help"])
    assert e.value.code == 0 and "examples/arithmetic/grpo.yaml" in capsys.readouterr().out
