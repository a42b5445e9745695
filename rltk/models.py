"""``rltk.models``: the names of :mod:`rltk.policy` under their historical home (``from rltk.models import
load_policy, LoraSettings`` keeps working). New code imports from ``rltk.policy``."""

from rltk.policy import *  # noqa: F401,F403  (re-export: the one list of names is rltk.policy.__all__)
from rltk.policy import __all__  # noqa: F401
