"""Training subcommands (``sft``, ``grpo``, ``plot``). Filled in by the GRPO engine."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    return None
