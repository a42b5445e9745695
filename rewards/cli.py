"""``rltk reward`` subcommands (score, test, audit)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    return None
