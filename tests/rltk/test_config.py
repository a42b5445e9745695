from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from rltk.core.config import from_dict, load_config, to_dict
from rltk.core.errors import UserError


@dataclass(frozen=True)
class Opt:
    lr: float = 1e-4
    steps: int = 10
    schedule: Literal["constant", "cosine"] = "constant"
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Job:
    opt: Opt = field(default_factory=Opt)
    name: str = "run"
    adapter: str | None = None
    params: dict[str, float] = field(default_factory=dict)


def test_defaults_come_from_the_dataclasses():
    assert from_dict(Job, {}) == Job()


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text("opt:\n  lr: 1e-3\n  names: [a, b]\nname: demo\n")
    cfg = load_config(Job, p, ["opt.steps=3", "adapter=runs/x", "params.w=0.5"])
    assert cfg.opt == Opt(lr=1e-3, steps=3, names=["a", "b"])
    assert cfg.name == "demo" and cfg.adapter == "runs/x" and cfg.params == {"w": 0.5}
    assert to_dict(cfg)["opt"]["lr"] == 1e-3


def test_int_is_accepted_where_a_float_is_expected():
    assert from_dict(Job, {"opt": {"lr": 1}}).opt.lr == 1.0


@pytest.mark.parametrize(
    "data, overrides, message",
    [
        ({"opt": {"lrr": 1}}, [], "config: unknown key 'opt.lrr' (did you mean 'opt.lr'?)"),
        ({}, ["opt.steps=three"], "config: key 'opt.steps' must be an integer, got 'three' (str)"),
        ({"opt": {"steps": True}}, [], "config: key 'opt.steps' must be an integer, got True (bool)"),
        ({"opt": {"schedule": "linear"}}, [], "config: key 'opt.schedule' must be one of 'constant', 'cosine', got 'linear'"),
        ({"opt": 3}, [], "config: opt must be a mapping, got int"),
        ({}, ["nokey"], "override 'nokey' must look like key=value (e.g. grpo.beta=0.02)"),
        ({"zzz": 1}, [], "config: unknown key 'zzz' (known: opt, name, adapter, params)"),
    ],
)
def test_bad_config_names_the_key(data, overrides, message):
    with pytest.raises(UserError) as e:
        from_dict(Job, data, overrides=overrides)
    assert str(e.value) == message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="config file not found: .*nope.yaml"):
        load_config(Job, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("opt:\n  lr: [1,\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+: invalid YAML"):
        load_config(Job, bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="top level must be a mapping"):
        load_config(Job, lst)
