"""The training CLI: every shipped example config loads, bad input exits 2 with one line, plot/sft run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rltk.cli import main
from rltk.config import load_config
from rltk.grpo import GRPOJobConfig, load_job_config
from rltk.sft import SFTJobConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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


def test_resume_without_checkpoint_exits_2(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {spec: tiny-random, quant: none}\nrewards: [{name: format_answer}]\nlog: {live: false}\n")
    (tmp_path / "run").mkdir()
    code, _, err = _run(["grpo", str(cfg), "grpo.steps=1", "--resume", str(tmp_path / "run")], capsys)
    # no checkpoint yet: the job starts in that folder (nothing to lose) -- it must not crash
    assert code == 0, err


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
