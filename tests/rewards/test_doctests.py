"""The docstring examples of the rewards modules run as tests, so they cannot drift."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["rewards", "rewards.core", "rewards.compose", "rewards.math", "rewards.math.extract",
           "rewards.math.normalization", "rewards.math.parse", "rewards.math.grade", "rewards.formats",
           "rewards.legal", "rewards.sandbox", "rewards.audit", "rewards.steps", "rewards.steps_parse"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
