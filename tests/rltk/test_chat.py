"""rltk chat: a terminal conversation driven through a pseudo-terminal, streaming, /reset, EOF, bad input."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rltk.chat import ChatSession, load_chat_model
from rltk.policy import load_policy, save_adapter

ROOT = Path(__file__).resolve().parents[2]


class _Pty:
    """A child process on a pseudo-terminal: what it prints, read until a marker shows up."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm"}
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                                     close_fds=True)
        os.close(slave)
        self.out = ""

    def read_until(self, marker: str, timeout: float = 180.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.out[start:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {marker!r} within {timeout} s; got {self.out!r}")
            ready, _, _ = select.select([self.master], [], [], 0.5)
            if ready:
                try:
                    self.out += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
        return self.out

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        finally:
            os.close(self.master)


def test_chat_on_a_terminal_question_in_streamed_answer_out_eof_exits_0():
    term = _Pty([sys.executable, "-m", "rltk", "chat", "smollm2-135m", "--max-new-tokens", "24",
                 "--system", "Answer in one short sentence."])
    try:
        term.read_until("you> ")
        term.send("What is the capital of France?\n")
        first = len(term.out)
        term.read_until("you> ", start=first)
        answer = term.out[first:]
        assert "model> " in answer and "Paris" in answer, answer
        term.send("/reset\n")
        term.read_until("(conversation reset)", start=first)
        term.send("\x04")  # Ctrl-D at the prompt: EOF
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


def test_chat_prompt_answers_once_and_matches_the_session():
    cmd = [sys.executable, "-m", "rltk", "chat", "tiny-random", "--prompt", "hello there", "--max-new-tokens", "16"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    session = ChatSession(load_chat_model("tiny-random"), max_new_tokens=16)
    reply = session.ask("hello there", stream=None)
    assert r.stdout.strip() == reply  # greedy: the script answer is the session's
    assert [m["role"] for m in session.messages] == ["user", "assistant"]


class _Recorder(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def test_the_answer_is_streamed_piece_by_piece_and_reset_keeps_the_system_message():
    session = ChatSession(load_chat_model("smollm2-135m"), system="Be brief.", max_new_tokens=24)
    out = _Recorder()
    reply = session.ask("Name three colors.", stream=out)
    pieces = [w for w in out.writes if w.strip()]
    assert len(pieces) >= 3, out.writes  # written word by word as generated, not once at the end
    assert "".join(out.writes).strip() == reply
    assert len(session.messages) == 3
    session.reset()
    assert session.messages == [{"role": "system", "content": "Be brief."}]


def test_a_run_or_adapter_folder_loads_on_the_base_it_names(tmp_path):
    pol = load_policy("tiny-random", quant="none", lora={"r": 4, "alpha": 8})
    with __import__("torch").no_grad():
        for name, p in pol.model.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)  # an adapter that changes the answers
    save_adapter(pol, tmp_path / "run" / "adapter")
    base = ChatSession(load_chat_model("tiny-random"), max_new_tokens=12).ask("abc", stream=None)
    via_run = ChatSession(load_chat_model(str(tmp_path / "run")), max_new_tokens=12).ask("abc", stream=None)
    via_flag = ChatSession(load_chat_model("tiny-random", adapter=str(tmp_path / "run" / "adapter")),
                           max_new_tokens=12).ask("abc", stream=None)
    assert via_run == via_flag != base


@pytest.mark.parametrize("argv, culprit", [
    (["chat", "no/such/model/folder"], "no/such/model/folder"),
    (["chat", "tiny-random", "--adapter", "/nonexistent-adapter"], "--adapter /nonexistent-adapter"),
    (["chat", "tiny-random", "--max-new-tokens", "0"], "--max-new-tokens"),
])
def test_bad_input_is_one_line_and_exit_2(argv, culprit):
    r = subprocess.run([sys.executable, "-m", "rltk", *argv], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0], r.stderr
