"""rltk: reward- and evaluation-centric RL for language models (GRPO on QLoRA)."""

__version__ = "0.1.0"

from rltk.core.errors import UserError  # noqa: E402

__all__ = ["UserError", "__version__"]
