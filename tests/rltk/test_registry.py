from __future__ import annotations

import pytest

from rltk.core.errors import UserError
from rltk.core.registry import Registry, load_object, resolve_callable


def test_register_get_and_refuse_duplicates():
    r: Registry = Registry("reward")
    r.register("one", lambda: 1)
    assert r.get("one")() == 1 and "one" in r and r.names() == ["one"]
    with pytest.raises(ValueError, match="already registered"):
        r.register("one", lambda: 2)


def test_unknown_name_suggests_close_ones():
    r: Registry = Registry("reward")
    r.register("math_answer", print)
    with pytest.raises(UserError, match="unknown reward 'math_anser' \\(did you mean math_answer"):
        r.get("math_anser")


def test_load_from_file_and_module(tmp_path):
    f = tmp_path / "my_reward.py"
    f.write_text("def score(completions, **kw):\n    return [float(len(c)) for c in completions]\n")
    fn = resolve_callable(f"{f}:score", Registry("reward"))
    assert fn(["ab", "c"]) == [2.0, 1.0]
    assert load_object("os.path:join")("a", "b") == "a/b"


@pytest.mark.parametrize(
    "ref, message",
    [
        ("nofile.py:fn", "reward file not found: nofile.py"),
        ("os.path:nothere", "reward 'os.path:nothere': os.path has no attribute 'nothere'"),
        ("no_such_module_xyz:fn", "reward module 'no_such_module_xyz' cannot be imported"),
        (":fn", "must look like module:attr"),
    ],
)
def test_bad_references(ref, message):
    with pytest.raises(UserError, match=message.replace("(", "\\(").replace(")", "\\)")):
        load_object(ref, kind="reward")


def test_broken_user_file_is_a_user_error(tmp_path):
    f = tmp_path / "broken.py"
    f.write_text("def f(:\n")
    with pytest.raises(UserError, match="broken.py failed to import: SyntaxError"):
        load_object(f"{f}:f", kind="reward")
