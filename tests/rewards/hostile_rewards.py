"""Misbehaving and probing rewards, loaded in tests as ``file.py:fn``: each one runs in a sandbox
worker and reports what it could do through its scores (the only channel a worker has)."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import tempfile
import time

_CALLS = 0


def batch_size_seen(completions, **kwargs):
    """Scores every row with the size of the batch it was called with."""
    return [float(len(completions))] * len(completions)


def call_number(completions, **kwargs):
    """Scores every row with how many times this worker has called it so far."""
    global _CALLS
    _CALLS += 1
    return [float(_CALLS)] * len(completions)


def refuses_batches(completions, **kwargs):
    """Written for one row at a time: a batch call raises, a row call scores 1."""
    if len(completions) != 1:
        raise ValueError(f"expected one completion, got {len(completions)}")
    return [1.0]


def hangs_on(completions, **kwargs):
    if any("hang" in c for c in completions):
        time.sleep(3600)
    return [1.0] * len(completions)


def always_hangs(completions, **kwargs):
    time.sleep(3600)
    return [1.0] * len(completions)


BAD = {"str": "x", "bool": True, "nan": math.nan, "inf": math.inf, "numstr": "1.0", "big": 1e308}


def bad_values(completions, **kwargs):
    return [BAD.get(c, 0.5) for c in completions]


def env_has(completions, **kwargs):
    """1 where the completion names an environment variable the worker can see."""
    return [1.0 if c in os.environ else 0.0 for c in completions]


def private_home(completions, **kwargs):
    home, here, tmp = os.environ.get("HOME"), os.getcwd(), tempfile.gettempdir()
    return [1.0 if home == here == tmp and "rltk-reward-" in here else 0.0] * len(completions)


def allocates_8gb(completions, **kwargs):
    blob = bytearray(8 << 30)
    return [float(len(blob) > 0)] * len(completions)


def spawns_sleeper(completions, marker, **kwargs):
    """Starts ``sleep <marker>`` (found by the test through /proc), then hangs on 'hang'."""
    subprocess.Popen(["sleep", str(marker[0])], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return hangs_on(completions)


def signals_parent(completions, **kwargs):
    os.kill(os.getppid(), signal.SIGTERM)
    time.sleep(0.5)
    return [1.0] * len(completions)


def signals_pid(completions, pid, **kwargs):
    """Sends SIGTERM to the pid it is given (the trainer's); 1 if that worked, 0 if no such process here."""
    try:
        os.kill(int(pid[0]), signal.SIGTERM)
    except ProcessLookupError:
        return [0.0] * len(completions)
    time.sleep(0.5)
    return [1.0] * len(completions)


def sees_pid(completions, pid, **kwargs):
    """1 if /proc shows the given pid (the trainer's), e.g. its environ."""
    return [1.0 if os.path.exists(f"/proc/{int(pid[0])}/environ") else 0.0] * len(completions)


def connects(completions, port, **kwargs):
    """1 if a TCP connection to 127.0.0.1:<port> (the test's listener) succeeds."""
    try:
        socket.create_connection(("127.0.0.1", int(port[0])), timeout=2).close()
        return [1.0] * len(completions)
    except OSError:
        return [0.0] * len(completions)


def writes(completions, path, **kwargs):
    """1 if it could create the file at ``path``."""
    try:
        with open(path[0], "w") as f:
            f.write("written by a reward")
        return [1.0] * len(completions)
    except OSError:
        return [0.0] * len(completions)
