"""Chaos: run folders lose nothing. A rerun into a used folder, simultaneous starts, a changed config on
--resume, a damaged latest checkpoint (issue 12, cases 1, 5 and 6)."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import yaml

from rltk.checkpoint import list_checkpoints
from rltk.cli import main
from rltk.core.config import from_dict
from rltk.core.errors import UserError
from rltk.grpo import GRPOJobConfig, train
from rltk.metrics import read_jsonl
from rltk.runs import claim_run_dir, read_config

pytestmark = pytest.mark.chaos

CONFIG = """\
model: {spec: tiny-random, quant: none, lora: {r: 4, alpha: 8}}
data: {source: arithmetic, limit: 24}
sampling: {group_size: 4, max_new_tokens: 6}
grpo: {steps: 3, prompts_per_step: 2, lr: 0.01, micro_batch_size: 8}
rewards: [{name: regex, params: {pattern: "[0-9]"}, label: digit}]
checkpoint: {every: 1, keep: 5}
log: {live: false, samples_every: 1}
"""


def _tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _config(tmp_path: Path, run_dir: Path) -> Path:
    path = tmp_path / "grpo.yaml"
    path.write_text(CONFIG + f"run_dir: {run_dir}\n")
    return path


def test_rerun_into_its_own_folder_loses_nothing_and_resume_continues_the_right_run(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _config(tmp_path, run)
    assert main(["grpo", str(cfg)]) == 0
    before = _tree(run)
    assert [p.name for p in list_checkpoints(run)] == ["step-000001", "step-000002", "step-000003"]

    # the same config again, a knob changed, no --resume: refused with one line, exit 2, the old run untouched
    capsys.readouterr()
    assert main(["grpo", str(cfg), "grpo.lr=0.02"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"run folder {run} already holds a run" in err and "--resume" in err
    assert _tree(run) == before

    # --resume with a key that may change: the run continues from its own last step
    assert main(["grpo", str(cfg), "grpo.steps=5", "--resume", str(run)]) == 0
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5]
    assert [p.name for p in list_checkpoints(run)][-1] == "step-000005"
    text = (run / "config.yaml").read_text()
    assert "# resumed " in text and "at step 3: grpo.steps: 3 -> 5" in text
    assert read_config(run)["grpo"]["steps"] == 5  # config.yaml is the config in force, and still loads


def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _config(tmp_path, run)
    assert main(["grpo", str(cfg), "grpo.steps=1"]) == 0
    before = _tree(run)
    capsys.readouterr()
    assert main(["grpo", str(cfg), "grpo.steps=2", "model.lora.r=8", "grpo.lr=0.5", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "model.lora.r: 4 -> 8" in err and "grpo.lr: 0.01 -> 0.5" in err and "grpo.steps" not in err.split(";")[0]
    assert _tree(run) == before  # nothing written


def test_simultaneous_default_run_folders_are_distinct(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got: list[Path] = []
    lock = threading.Lock()

    def claim() -> None:
        path = claim_run_dir("grpo", None)
        with lock:
            got.append(path)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len(set(got)) == 8 and all(p.is_dir() for p in got)


def test_a_damaged_latest_checkpoint_is_skipped_with_a_warning(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = from_dict(GRPOJobConfig, {**_yaml(CONFIG), "run_dir": str(run)})
    train(cfg)
    newest = list_checkpoints(run)[-1]
    adapter = newest / "adapter" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[: adapter.stat().st_size // 2])  # truncated, as by a full disk
    capsys.readouterr()
    resumed = train(cfg, resume=run)
    err = capsys.readouterr().err
    assert f"checkpoint {newest} is damaged" in err and "skipping it" in err
    assert [r["step"] for r in resumed.history] == [1, 2, 3]  # step 3 redone from the step-2 checkpoint


def test_every_checkpoint_damaged_is_one_error(tmp_path):
    run = tmp_path / "run"
    cfg = from_dict(GRPOJobConfig, {**_yaml(CONFIG), "run_dir": str(run), "grpo": {**_yaml(CONFIG)["grpo"], "steps": 1}})
    train(cfg)
    for ckpt in list_checkpoints(run):
        (ckpt / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="every checkpoint of .* is damaged"):
        train(cfg, resume=run)


def _yaml(text: str) -> dict:
    return yaml.safe_load(text)


def test_two_runs_of_one_config_keep_their_own_checkpoints_through_a_kill(tmp_path, monkeypatch):
    """Without run_dir each start gets its own folder; killing the second keeps its checkpoints, and
    --resume continues that run, not the first."""
    from rltk.rollouts import LocalRollouts

    monkeypatch.chdir(tmp_path)
    cfg = from_dict(GRPOJobConfig, _yaml(CONFIG))
    first = train(cfg).run_dir
    first_files = _tree(first)
    calls = {"n": 0}
    real = LocalRollouts.collect

    def dies_in_step_3(self, handle):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real(self, handle)

    monkeypatch.setattr(LocalRollouts, "collect", dies_in_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(LocalRollouts, "collect", real)
    second = next(p for p in Path("runs").iterdir() if p.resolve() != first.resolve())
    assert [p.name for p in list_checkpoints(second)] == ["step-000001", "step-000002"]
    resumed = train(cfg, resume=second)
    assert resumed.run_dir == second and [r["step"] for r in read_jsonl(second / "metrics.jsonl")] == [1, 2, 3]
    assert _tree(first) == first_files
