"""Packaging and paths: LICENSE and py.typed shipped, `rltk demo` finds its config in an installed wheel,
paths in a config are relative to its folder, a failed start leaves no empty run folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rltk.cli import main
from rltk.grpo import load_job_config
from rltk.sft import load_sft_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    return next(out.glob("rltk-*.whl"))


@pytest.mark.slow
def test_the_wheel_ships_license_types_and_examples(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"rltk/py.typed", "rewards/py.typed", "evals/py.typed"} <= names
    assert {"rltk/examples/arithmetic/grpo.yaml", "rltk/examples/arithmetic/sft.yaml"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.slow
def test_rltk_demo_finds_its_config_in_an_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    code = ("import rltk.commands as c, rltk.grpo as g; print(c.DEMO_CONFIG); "
            "cfg = g.load_job_config(c.DEMO_CONFIG); print(cfg.grpo.steps, cfg.warm_start)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    demo, info = proc.stdout.strip().splitlines()[-2:]
    assert demo.startswith(str(target)) and demo.endswith("rltk/examples/arithmetic/grpo.yaml")
    assert info.split()[1].startswith(str(target)) and info.endswith("sft.yaml")  # the warm start beside it


def test_paths_in_a_config_are_relative_to_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "my_rewards.py").write_text("def f(completions, **kw):\n    return [0.0] * len(completions)\n")
    (folder / "rows.jsonl").write_text('{"question": "1+1", "answer": "2", "solution": "2"}\n')
    (folder / "grpo.yaml").write_text("data: {source: rows.jsonl}\nrewards: [{name: 'my_rewards.py:f'}]\n")
    (folder / "sft.yaml").write_text("data: {source: rows.jsonl}\n")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    cfg = load_job_config(folder / "grpo.yaml")
    assert cfg.data.source == str(folder / "rows.jsonl")
    assert cfg.rewards[0].name == f"{folder / 'my_rewards.py'}:f"
    assert load_sft_config(folder / "sft.yaml").data.source == str(folder / "rows.jsonl")
    assert load_job_config(folder / "grpo.yaml", ["data.source=arithmetic"]).data.source == "arithmetic"


def test_a_failed_start_leaves_no_empty_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "grpo.yaml"
    cfg.write_text("model: {spec: no-such-model-anywhere}\ndata: {source: arithmetic, limit: 8}\n"
                   "sampling: {group_size: 2}\nrewards: [{name: math_answer}]\nlog: {live: false}\n")
    assert main(["grpo", str(cfg)]) == 2
    assert "no-such-model-anywhere" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
