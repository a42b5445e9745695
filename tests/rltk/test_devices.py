"""The CPU compute dtype is chosen by measurement (bf16 only where it is clearly faster), kept per CPU, and
overridable; with fp32 nothing autocasts."""

from __future__ import annotations

import json

import pytest
import torch

import rltk.policy.devices as devices
from rltk.core.errors import UserError
from rltk.core.machine import cpu_model, matrix_flags
from rltk.policy.devices import DtypeChoice, autocast, compute_dtype, compute_dtype_choice, measure_cpu_dtype

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def fresh_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("RLTK_CACHE", str(tmp_path / "cache"))
    compute_dtype_choice.cache_clear()
    yield
    compute_dtype_choice.cache_clear()


@pytest.mark.parametrize("env, want", [("fp32", torch.float32), ("bf16", torch.bfloat16), ("BF16", torch.bfloat16)])
def test_the_environment_overrides_the_measurement(monkeypatch, env, want):
    monkeypatch.setenv("RLTK_CPU_DTYPE", env)
    monkeypatch.setattr(devices, "measure_cpu_dtype", lambda: pytest.fail("measured although RLTK_CPU_DTYPE is set"))
    assert compute_dtype(CPU) == want
    assert compute_dtype_choice().how == "env"
    with autocast(CPU):
        assert torch.is_autocast_enabled("cpu") == (want == torch.bfloat16)  # fp32: no autocast at all


def test_a_bad_override_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("RLTK_CPU_DTYPE", "fp8")
    with pytest.raises(UserError, match="RLTK_CPU_DTYPE='fp8'"):
        compute_dtype(CPU)


@pytest.mark.parametrize("fp32, bf16, want", [(100.0, 15.0, "float32"),  # AVX2 only: bf16 emulated, 7x slower
                                              (100.0, 110.0, "float32"),  # a little faster is not worth the precision
                                              (100.0, 600.0, "bfloat16")])  # AMX
def test_bf16_is_chosen_only_where_it_is_clearly_faster(monkeypatch, fp32, bf16, want):
    monkeypatch.setattr(devices, "probe_gflops", lambda dtype: fp32 if dtype == torch.float32 else bf16)
    c = measure_cpu_dtype(rounds=1)
    assert (c.dtype, c.how, c.fp32_gflops, c.bf16_gflops) == (want, "measured", fp32, bf16)


def test_the_choice_is_measured_once_per_cpu_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("RLTK_CPU_DTYPE", raising=False)
    calls = []
    monkeypatch.setattr(devices, "measure_cpu_dtype",
                        lambda: calls.append(1) or DtypeChoice("bfloat16", "measured", 50.0, 400.0, cpu_model()))
    assert compute_dtype(CPU) == torch.bfloat16
    kept = json.loads((tmp_path / "cache" / "compute_dtype.json").read_text())
    (key, entry), = kept.items()
    assert cpu_model() in key and matrix_flags() in key and torch.__version__ in key and entry["dtype"] == "bfloat16"
    compute_dtype_choice.cache_clear()  # a new process
    assert compute_dtype_choice().how == "cached" and compute_dtype(CPU) == torch.bfloat16 and calls == [1]
    assert "bf16 400.0 vs fp32 50.0 GFLOP/s" in compute_dtype_choice().describe()


def test_a_damaged_cache_is_measured_again(monkeypatch, tmp_path):
    monkeypatch.delenv("RLTK_CPU_DTYPE", raising=False)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "compute_dtype.json").write_text("{not json")
    monkeypatch.setattr(devices, "measure_cpu_dtype", lambda: DtypeChoice("float32", "measured", 90.0, 10.0))
    assert compute_dtype(CPU) == torch.float32 and compute_dtype_choice().how == "measured"


def test_the_probe_measures_this_cpu():
    assert devices.probe_gflops(torch.float32, reps=1) > 0.1
