"""Checkpoints: atomic folders, keep-last-K, exact state round trip, interrupted saves ignored."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rltk.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_adapter_into,
    restore_logs,
    save_checkpoint,
)
from rltk.core.errors import UserError
from rltk.core.seeds import restore_rng
from rltk.models import LoraSettings, tiny_policy, trainable_state


def _policy(bump: float = 0.0):
    pol = tiny_policy(lora=LoraSettings(r=4))
    with torch.no_grad():
        for n, p in pol.model.named_parameters():
            if "lora_B" in n:
                p.fill_(bump)
    return pol


def test_save_load_round_trip_is_exact(tmp_path):
    pol = _policy(0.125)
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    opt = torch.optim.AdamW([p for p in pol.model.parameters() if p.requires_grad], lr=0.1)
    opt.zero_grad()
    sum(p.sum() for p in pol.model.parameters() if p.requires_grad).backward()
    opt.step()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    path = save_checkpoint(tmp_path, 2, pol, {"optimizer": opt.state_dict(), "version": 2}, cursor=16)
    assert path.name == "step-000002" and (path / "adapter" / "adapter_config.json").is_file()
    want_draws = (random.random(), float(np.random.rand()), float(torch.rand(1)))

    ckpt = latest_checkpoint(tmp_path)
    assert (ckpt.step, ckpt.cursor, ckpt.learner["version"]) == (2, 16, 2)
    other = _policy(0.0)
    load_adapter_into(other.model, ckpt.adapter_dir)
    a, b = trainable_state(pol.model), trainable_state(other.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    restore_rng(ckpt.rng)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == want_draws
    exp_avg = opt.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(ckpt.learner["optimizer"]["state"][0]["exp_avg"], exp_avg)
    # the logs as they were at the checkpoint come back, later lines dropped
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n')
    (tmp_path / "samples.jsonl").write_text("{}\n")
    restore_logs(ckpt, tmp_path)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1}\n{"step": 2}\n'
    assert not (tmp_path / "samples.jsonl").exists()


def test_keeps_the_last_k_and_ignores_interrupted_saves(tmp_path):
    pol = _policy()
    for step in (2, 4, 6):
        save_checkpoint(tmp_path, step, pol, {"version": step}, cursor=step * 4, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000004", "step-000006"]
    # a save killed before its rename: a .tmp folder with a state file; never picked up
    partial = tmp_path / "checkpoints" / ".tmp-step-000008-abc"
    partial.mkdir()
    (partial / "state.pt").write_bytes(b"truncated")
    assert latest_checkpoint(tmp_path).step == 6
    save_checkpoint(tmp_path, 8, pol, {"version": 8}, cursor=32, keep=2)
    assert not partial.exists()  # cleaned by the next save
    assert latest_checkpoint(tmp_path).step == 8


def test_a_failing_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    pol = _policy()
    save_checkpoint(tmp_path, 2, pol, {"version": 2}, cursor=8)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 4, pol, {"version": 4}, cursor=16)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000002"]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_saving_the_same_step_again_replaces_it(tmp_path):
    save_checkpoint(tmp_path, 2, _policy(0.0), {"version": 1}, cursor=8)
    save_checkpoint(tmp_path, 2, _policy(0.5), {"version": 9}, cursor=8)
    assert latest_checkpoint(tmp_path).learner["version"] == 9
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000002"]


def test_resume_errors_name_the_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        latest_checkpoint(tmp_path / "nope")
    with pytest.raises(UserError, match="no complete checkpoint"):
        latest_checkpoint(tmp_path)
