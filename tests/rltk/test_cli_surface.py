"""The CLI's surface: every ``rltk ...`` command the README shows parses, the Ray shorthands reach the
config, ``python -m rltk`` works, and ``rltk --help`` stays light (no torch import)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import rltk.commands as commands
from rltk.cli import build_parser, main, parse_args, resolve_handler

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[list[str]]:
    """Each ``rltk ...`` command line of the README's code blocks (continuations joined, comments and
    environment prefixes dropped), as argv lists without the leading ``rltk``."""
    blocks, lang, lines = [], None, []
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, lines = line[3:].strip(), []
            else:
                if lang in ("bash", "sh", ""):
                    blocks.append("\n".join(lines))
                lang = None
        elif lang is not None:
            lines.append(line)
    out = []
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #")[0].strip()
            m = re.search(r"(?:^|\s|--\s)rltk\s+(.*)$", line)
            if m and not line.startswith(("pip", "cd ")):
                out.append(shlex.split(m.group(1)))
    return out


def test_readme_shows_commands():
    cmds = readme_commands()
    assert len(cmds) >= 15
    assert ["grpo", "examples/arithmetic/grpo.yaml", "--workers", "2"] in cmds


@pytest.mark.parametrize("argv", readme_commands(), ids=lambda a: " ".join(a)[:60])
def test_every_readme_command_parses(argv):
    args = parse_args(build_parser(), argv)  # SystemExit (exit 2) on an unknown flag or a missing argument
    handler = resolve_handler(args.func)  # the named handler exists and imports
    assert callable(handler)


def test_ray_flags_are_the_distributed_overrides(monkeypatch, capsys):
    seen = {}

    def fake_run_job(cfg, resume=None):
        seen["cfg"] = cfg
        return type("R", (), {"summary": {}})()

    monkeypatch.setattr(commands, "run_job", fake_run_job)
    code = main(["grpo", str(ROOT / "examples/arithmetic/grpo.yaml"), "grpo.steps=1", "--workers", "3",
                 "--ray-address", "10.0.0.1:6379"])
    assert code == 0
    d = seen["cfg"].distributed
    assert (d.workers, d.ray_address) == (3, "10.0.0.1:6379")
    assert seen["cfg"].grpo.steps == 1
    main(["demo", "--workers", "0"])
    assert seen["cfg"].distributed.workers == 0 and seen["cfg"].distributed.ray_address is None


def test_overrides_after_flags_are_overrides():
    args = parse_args(build_parser(), ["grpo", "c.yaml", "a=1", "--workers", "8", "b.c=2", "--resume", "runs/x"])
    assert args.overrides == ["a=1", "b.c=2"] and args.workers == 8 and args.resume == "runs/x"
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["grpo", "c.yaml", "--workers", "8", "--nope"])
    with pytest.raises(SystemExit):
        parse_args(build_parser(), ["plot", "runs/x", "a=1"])  # plot takes no overrides


def test_bad_workers_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["grpo", "x.yaml", "--workers", "two"])
    assert e.value.code == 2 and "--workers" in capsys.readouterr().err


def test_python_dash_m_rltk():
    proc = subprocess.run([sys.executable, "-m", "rltk", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("rltk ")


def test_help_does_not_import_torch():
    code = "import sys; from rltk.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
