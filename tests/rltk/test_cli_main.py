from __future__ import annotations

import subprocess
import sys

from rltk.cli import main


def test_info_prints_versions_and_cache(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("torch", "transformers", "peft", "bitsandbytes", "ray", "cache", "smollm2-135m"):
        assert word in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: rltk" in capsys.readouterr().out


def test_console_script_is_installed():
    proc = subprocess.run([sys.executable, "-m", "rltk.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("rltk ")


def test_cli_silences_library_chatter():
    import logging

    from transformers.utils import logging as hf_logging

    from rltk.cli import quiet_libraries

    hf_logging.enable_progress_bar()
    quiet_libraries()
    assert not hf_logging.is_progress_bar_enabled()  # no "Loading weights" bars between our tables
    assert hf_logging.get_verbosity() == hf_logging.ERROR
    assert logging.getLogger("bitsandbytes").getEffectiveLevel() == logging.ERROR
