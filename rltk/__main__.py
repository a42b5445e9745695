"""``python -m rltk``: the ``rltk`` command."""

import sys

from rltk.cli import main

sys.exit(main())
