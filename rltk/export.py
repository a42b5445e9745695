"""``rltk export RUN_DIR_OR_ADAPTER --out DIR --format hf|nf4|gguf``: a trained adapter merged into its base
(peft's ``merge_and_unload``, in fp32) and written for deployment:

* ``hf``: a standalone transformers folder (``--dtype bf16|fp16|fp32``) with tokenizer, chat template,
  generation config and a model card (``README.md``: base, adapter, training config, eval table);
* ``nf4``: the merged model quantized by bitsandbytes (4-bit NF4, double quantization) and saved so that
  ``from_pretrained(DIR)`` reloads it 4-bit;
* ``gguf``: ``model.gguf`` (``--gguf-type f16|q8_0``, :mod:`rltk.export_gguf`) and an Ollama ``Modelfile``.

The base comes from the adapter (``base_model_name_or_path``; the embedded model's hub id loads the embedded copy,
:func:`rltk.policy.spec_for_base`), or ``--base``. The folder is written beside ``DIR`` and renamed into place, then
reloaded once (transformers ``from_pretrained``, this process, warm file cache) to time the load.

From Python::

    from rltk.export import export
    result = export("runs/grpo-20260101-120000", "deploy/hf", "hf", dtype="bf16")
    result.size_bytes, result.load_seconds
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rltk.core.errors import UserError
from rltk.export_card import model_card, modelfile
from rltk.export_gguf import GGUF_TYPES, write_gguf
from rltk.policy import adapter_base, load_policy, read_prompt, spec_for_base
from rltk.policy.base import load_base
from rltk.runs import CONFIG_FILE

FORMATS = ("hf", "nf4", "gguf")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
GGUF_FILE = "model.gguf"


@dataclass(frozen=True)
class ExportSource:
    adapter: Path  # the peft adapter folder
    run_dir: Path | None  # the run it came from (holds config.yaml, maybe summary.json), when found
    base: str  # what rltk loads the base from (an alias, folder or hub id)
    base_name: str  # what the export says its base is (the adapter's base_model_name_or_path)


@dataclass(frozen=True)
class ExportResult:
    format: str
    detail: str  # "bf16", "nf4 (bitsandbytes 4-bit)", "q8_0"
    path: Path  # the folder written
    model_file: Path  # the weights (model.safetensors / model.gguf)
    size_bytes: int  # the whole folder on disk
    load_seconds: float  # from_pretrained of the written folder, in this process


def find_source(path: str | Path, base: str | None = None) -> ExportSource:
    """The adapter in ``path`` (a run folder with ``adapter/``, or an adapter folder), its run and its base."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{path} does not exist (give a run folder or a peft adapter folder)")
    if (p / "adapter_config.json").is_file():
        adapter = p
    elif (p / "adapter" / "adapter_config.json").is_file():
        adapter = p / "adapter"
    else:
        raise UserError(f"{path} is neither a run folder (no adapter/adapter_config.json) nor a peft adapter folder "
                        "(no adapter_config.json)")
    run_dir = next((d for d in (adapter.parent, *adapter.parents[1:3]) if (d / CONFIG_FILE).is_file()), None)
    try:
        named = adapter_base(adapter)
    except (ValueError, OSError) as e:
        raise UserError(f"{adapter}/adapter_config.json cannot be read: {str(e).splitlines()[0]}") from e
    if base is None and not named:
        raise UserError(f"adapter {adapter} names no base model (base_model_name_or_path); give --base")
    return ExportSource(adapter, run_dir, base or spec_for_base(named), named or base)


def merged_model(src: ExportSource) -> tuple[Any, Any]:
    """Base (fp32, CPU) + adapter merged into plain weights, and the tokenizer (the adapter's own when it has one)."""
    from transformers import AutoTokenizer

    policy = load_policy(src.base, quant="none", adapter=str(src.adapter), device="cpu", trainable=False)
    model = policy.model.merge_and_unload()
    tok = AutoTokenizer.from_pretrained(str(src.adapter)) if (src.adapter / "tokenizer_config.json").is_file() \
        else policy.tokenizer
    model.generation_config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.config.pad_token_id = model.generation_config.pad_token_id
    return model, tok


def _write_hf(model: Any, tok: Any, folder: Path, dtype: str) -> str:
    model.to(DTYPES[dtype]).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return dtype


def _write_nf4(model: Any, tok: Any, folder: Path) -> str:
    """bitsandbytes quantizes while loading, so the merged fp32 model goes through a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="rltk-export-dense-") as dense:
        model.save_pretrained(dense)
        quantized = load_base(dense, "the merged model", "nf4", torch.device("cpu"))
    quantized.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return "nf4 (bitsandbytes 4-bit, double quant)"


def _write_gguf(model: Any, tok: Any, folder: Path, gguf_type: str, system: str | None) -> str:
    with tempfile.TemporaryDirectory(prefix="rltk-export-tok-") as tok_dir:
        tok.save_pretrained(tok_dir)
        write_gguf(model, tok, Path(tok_dir), folder / GGUF_FILE, gguf_type, folder.name)
    (folder / "Modelfile").write_text(modelfile(tok, GGUF_FILE, system))
    return gguf_type


def _claim_out(out: Path, force: bool, adapter: Path) -> None:
    """``out`` must be absent or empty; with ``force`` an existing one is replaced, unless it holds the input."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UserError(f"--out {out} is not empty (give --force to replace it, or another folder)")
        if adapter.resolve() == out.resolve() or out.resolve() in adapter.resolve().parents:
            raise UserError(f"--out {out} holds the adapter being exported; choose another folder")


def _reload_seconds(folder: Path, fmt: str) -> float:
    from transformers import AutoModelForCausalLM

    kwargs = {"gguf_file": GGUF_FILE, "dtype": torch.float32} if fmt == "gguf" else {}
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    seconds = time.perf_counter() - t0
    del model
    return seconds


def export(source: str | Path, out: str | Path, fmt: str, *, dtype: str = "bf16", gguf_type: str = "f16",
           force: bool = False, base: str | None = None, reload: bool = True) -> ExportResult:
    """Merge the adapter in ``source`` into its base and write ``fmt`` to ``out`` (see the module docstring)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r} (choose from {', '.join(FORMATS)})")
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    if gguf_type not in GGUF_TYPES:
        raise UserError(f"unknown --gguf-type {gguf_type!r} (choose from {', '.join(GGUF_TYPES)})")
    src = find_source(source, base)
    dest = Path(out).expanduser()
    _claim_out(dest, force, src.adapter)
    model, tok = merged_model(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        if fmt == "hf":
            detail = _write_hf(model, tok, tmp, dtype)
        elif fmt == "nf4":
            detail = _write_nf4(model, tok, tmp)
        else:
            detail = _write_gguf(model, tok, tmp, gguf_type, (read_prompt(src.adapter) or {}).get("system_prompt"))
        (tmp / "README.md").write_text(model_card(fmt=fmt, detail=detail, base=src.base_name, adapter=src.adapter,
                                                  run_dir=src.run_dir, folder_name=dest.name))
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    main_file = dest / GGUF_FILE if fmt == "gguf" else next(iter(sorted(dest.glob("*.safetensors"))), dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    return ExportResult(fmt, detail, dest, main_file, size, _reload_seconds(dest, fmt) if reload else float("nan"))


__all__ = ["DTYPES", "ExportResult", "ExportSource", "FORMATS", "GGUF_FILE", "export", "find_source", "merged_model"]
