"""math_answer: extraction and verification tables (Math-Verify style), the benchmark self-checks,
code injection and adversarial inputs."""

from __future__ import annotations

import os
import random
import re
import time

import pytest

import rewards.math.grade as grade
from rewards import RewardSet, RewardSpec, get_reward
from rewards.math import (
    SYMBOLIC_CHECK,
    ExtractOptions,
    VerificationTimeout,
    VerifyOptions,
    bare_arithmetic,
    check_symbolic,
    compact,
    extract_answer,
    gold_answer,
    verify,
)
from rewards.sandbox import SandboxPool, get_pool
from rltk.core.registry import load_object

# --- extraction --------------------------------------------------------------------------------

EXTRACT = [
    # (completion, expected answer)
    (r"We get $x = 2$, so the answer is $\boxed{\frac{\sqrt{3}}{2}}$.", r"\frac{\sqrt{3}}{2}"),
    (r"\boxed{\left( 3, \frac{\pi}{2} \right)}", r"\left( 3, \frac{\pi}{2} \right)"),
    (r"First \boxed{1}, corrected: \boxed{2}", "2"),
    (r"nested \boxed{\{1, \{2\}\}} done", r"\{1, \{2\}\}"),
    (r"\fbox{42}", "42"),
    (r"so \boxed 5 is it", "5"),
    ("Janet sells 16 - 3 - 4 = 9 eggs.\nShe makes 9 * 2 = $18.\n#### 18", "18"),
    ("#### $1,234.", "$1,234"),
    ("The answer is 72.", "72"),
    ("Therefore, the final answer is: $\\frac{1}{2}$. I hope it is correct.", r"\frac{1}{2}"),
    ("Final Answer: 3.5", "3.5"),
    ("She has 5 apples, then 7, so 12 in total", "12"),
    ("It costs 1,200 dollars", "1,200"),
    ("half is 3/4 of it", "3/4"),
    ("no numbers here", None),
    ("", None),
    ([{"role": "assistant", "content": "so #### 7"}], "7"),
]


@pytest.mark.parametrize("completion,expected", EXTRACT)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_extract_forms_switch_off():
    text = r"the answer is 3. \boxed{4}"
    assert extract_answer(text) == "4"
    assert extract_answer(text, ExtractOptions(boxed=False)) == "3"
    assert extract_answer("I think 5", ExtractOptions(last_number=False)) is None


def test_gold_formats():
    assert gold_answer("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert gold_answer(r"so $\boxed{\frac{1}{2}}$") == r"\frac{1}{2}"
    assert gold_answer(r"\left( 3, \frac{\pi}{2} \right)") == r"\left( 3, \frac{\pi}{2} \right)"
    assert gold_answer("  ") is None and gold_answer(None) is None


# --- equivalence -------------------------------------------------------------------------------

EQUIV = [
    # (gold, predicted, equal?)
    ("0.5", r"\frac{1}{2}", True),
    (r"\frac{1}{2}", "0.5", True),
    (r"\frac{1}{2}", "1/2", True),
    (r"\dfrac{14}{3}", r"\frac{14}{3}", True),
    (r"\frac43", r"\frac{4}{3}", True),
    ("1,000", "1000", True),
    ("1000", "1,000", True),
    (r"10,\!080", "10080", True),
    (r"11,\! 111,\! 111,\! 100", "11111111100", True),
    ("50\\%", "50", True),
    ("50", "50%", True),
    ("0.5", "50%", True),
    ("18.90", "18.9", True),
    (r"\$18.90", "18.90", True),
    (".35625", "0.35625", True),
    ("1.25", r"\frac{5}{4}", True),
    (r"\frac{1}{3}", "0.33", True),
    (r"\frac{1}{3}", "0.333", True),
    (r"\frac{1}{3}", "0.3", True),  # a rounding to 1 place (issue 14)
    ("0.15", "0.2", False),
    ("0.15", "0.150", True),
    ("72", "73", False),
    ("-50", "50", False),
    (r"\sqrt{2}/2", r"\frac{\sqrt{2}}{2}", True),
    (r"\frac{\sqrt{2}}{2}", r"\frac{1}{\sqrt{2}}", True),
    (r"3\sqrt{13}", r"\sqrt{117}", True),
    (r"11\sqrt2", r"11\sqrt{2}", True),
    (r"\pi", "pi", True),
    (r"2\pi", r"2 \pi", True),
    (r"\frac{\pi}{2}", "pi/2", True),
    (r"\frac{\pi}{3}", r"\frac{\pi}{2}", False),
    (r"2^{10}", "1024", True),
    (r"10!", "3628800", True),
    ("x=5", "5", True),
    ("5", "x = 5", True),
    (r"90^\circ", "90", True),
    (r"90^{\circ}", r"90^\circ", True),
    (r"5.4 \text{ cents}", "5.4", True),
    (r"\frac{270}7\text{ degrees}", r"\frac{270}{7}", True),
    (r"864 \mbox{ inches}^2", "864", True),
    (r"\text{Evelyn}", "Evelyn", True),
    (r"\text{(C)}", "C", True),
    (r"\text{(C)}", "(B)", False),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})", True),
    (r"\left( 3, \frac{\pi}{2} \right)", "(3, pi/2)", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(\frac{\pi}{2}, 3)", False),
    ("(6,31,-1)", "(6, 31, -1)", True),
    ("(-2,1)", "(1,-2)", False),
    ("(3,4]", r"\left(3, 4\right]", True),
    ("(3,4]", "[3,4]", False),
    (r"(-\infty, 0]", r"(-\infty,0]", True),
    (r"(-\infty, 2) \cup (3, \infty)", r"(-\infty,2)\cup(3,\infty)", True),
    (r"(-\infty, 2) \cup (3, \infty)", r"(-\infty,2)\cup(4,\infty)", False),
    ("x \\in [-2,7]", "[-2,7]", True),
    ("1,-2", "-2, 1", True),
    ("3, 5, 7", "7, 3, 5", True),
    ("3, 5, 7", "3, 5", False),
    (r"\{1\pm\sqrt{5},-2\}", r"-2, 1+\sqrt{5}, 1-\sqrt{5}", True),
    (r"1 \pm \sqrt{19}", r"1+\sqrt{19}, 1-\sqrt{19}", True),
    ("6 - 5i", "6-5i", True),
    ("6 - 5i", "6+5i", False),
    ("x^2+2x+1", "(x+1)^2", True),
    (r"x^5 - x^4 + x^3 - x^2 + x - 1", r"(x-1)(x^4+x^2+1)", True),
    ("p - q", "q - p", False),
    ("x^2+2x+1", "5", False),
    (r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}", r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}", True),
    (r"\begin{pmatrix} 1 \\ -2 \end{pmatrix}", r"\begin{pmatrix} -2 \\ 1 \end{pmatrix}", False),
    ("6.72\\times10^{-5}", ".0000672", True),
]


@pytest.mark.parametrize("gold,pred,expected", EQUIV)
def test_verify_table(gold, pred, expected):
    assert verify(gold, pred) is expected


def test_reward_values_and_not_applicable():
    ma = get_reward("math_answer")
    out = ma([r"\boxed{4}", r"\boxed{5}", "no idea", r"\boxed{4}"], answer=["4", "4", "4", None])
    assert out == [1.0, 0.0, 0.0, None]
    assert get_reward("math_answer", gold_column="solution")(["#### 3"], solution=["1+2=3\n#### 3"]) == [1.0]


# --- benchmark self-checks ---------------------------------------------------------------------

def test_math500_self_check(math500):
    golds = [r["answer"] for r in math500]
    ma = get_reward("math_answer")
    same = ma([f"So the final answer is $\\boxed{{{g}}}$." for g in golds], answer=golds)
    assert sum(s == 1.0 for s in same) >= 0.995 * len(golds)
    perm = list(range(len(golds)))
    random.Random(0).shuffle(perm)
    other = ma([f"\\boxed{{{golds[j]}}}" for j in perm], answer=golds)
    assert None not in other
    # MATH-500 repeats small answers ("3", "9", ...): 8 of these 500 pairs truly coincide. A hit is
    # allowed only there; elsewhere (a verifier false positive) at most 1% — we expect none.
    coincide = {i for i in range(len(golds)) if compact(golds[i]) == compact(golds[perm[i]])}
    hits = {i for i, s in enumerate(other) if s == 1.0}
    false_hits = hits - coincide
    assert len(false_hits) <= 0.01 * len(golds), [(golds[i], golds[perm[i]]) for i in false_hits]
    assert not false_hits
    assert hits == coincide  # and every true coincidence is recognised


def test_math500_gold_parses_symbolically(math500):
    """The sympy tier alone (no text shortcut) also accepts each gold against itself."""
    golds = [r["answer"] for r in math500][::5]
    ok = [check_symbolic(g, g) for g in golds]
    assert sum(ok) >= 0.99 * len(golds)


def test_gsm8k_right_and_wrong_numbers(gsm8k_test):
    ma = get_reward("math_answer")
    golds = [r["answer"] for r in gsm8k_test]
    numbers = [g.rsplit("####", 1)[1].strip().replace(",", "") for g in golds]
    right = ma([f"Let me think step by step.\n#### {n}" for n in numbers], answer=golds)
    assert right == [1.0] * len(golds)
    wrong = ma([f"Let me think step by step.\n#### {int(n) + 1}" for n in numbers], answer=golds)
    assert wrong == [0.0] * len(golds)


# --- untrusted input ---------------------------------------------------------------------------

INJECTIONS = [
    "the answer is __import__('os').system('touch {f}')",
    "the answer is exec(\"open('{f}', 'w').write('x')\")",
    r"\boxed{__import__('os').system('touch {f}')}",
    r"\boxed{eval(\"open('{f}','w')\")}",
    "#### (lambda: __import__('os').system('touch {f}'))()",
    "the answer is [c for c in ().__class__.__base__.__subclasses__()][0]",
    r"\boxed{Symbol('x').__class__.__init__.__globals__['os'].system('touch {f}')}",
]


@pytest.mark.parametrize("template", INJECTIONS)
def test_code_injection_never_runs(tmp_path, template):
    marker = tmp_path / "pwned"
    text = template.replace("{f}", str(marker))
    ma = get_reward("math_answer")
    # against a gold that forces the symbolic (parsing) tier in a worker, and in-process parsing too
    assert ma([text], answer=[r"\frac{\sqrt{2}}{2}"]) == [0.0]
    assert check_symbolic(r"\frac{\sqrt{2}}{2}", extract_answer(text)) is False
    time.sleep(0.05)
    assert not marker.exists()


ADVERSARIAL = {
    "power tower": r"\boxed{9^9^9^9^9}",
    "braced tower": r"\boxed{9^{9^{9^{9^{9}}}}}",
    "plain huge power": "the answer is 10^(10^10)",
    "latex huge power": r"\boxed{10^{10^{10}}}",
    "100 kB expression": r"\boxed{" + "+".join(["x^2"] * 25_000) + "}",
    "deep braces": r"\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "deep fractions": r"\boxed{" + r"\frac{1}{" * 400 + "2" + "}" * 400 + "}",
    "deep parens": "the answer is " + "(" * 3000 + "1" + ")" * 3000,
    "big factorial": r"\boxed{100000!}",
    "expansion bomb": r"\boxed{(x+y+z)^{500}}",
    "many digits": r"\boxed{" + "9" * 20_000 + "}",
    "huge product": r"\boxed{2^{10000} \cdot 3^{9000} \cdot 7^{9000}}",
    # texts that would make backtracking regexes in answer normalisation run for minutes
    "unit-word backtracking": "#### 1 " + "a" * 990 + "!",
    "unit-text backtracking": "#### " + "1}" * 490 + "x",
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_answers_return_within_limit(name):
    limit = 3.0
    ma = get_reward("math_answer", timeout_s=limit)
    get_pool("verify").warm()
    t0 = time.monotonic()
    out = ma([ADVERSARIAL[name]], answer=[r"\frac{\sqrt{3}}{2}"])
    elapsed = time.monotonic() - t0
    assert elapsed < limit + 2.0  # the hard limit plus process kill/replace slack
    assert out in ([0.0], [None])
    # the process (and the worker pool) is healthy afterwards
    assert ma([r"\boxed{\frac{\sqrt{3}}{2}}"], answer=[r"\frac{\sqrt{3}}{2}"]) == [1.0]


def test_pool_kills_and_replaces_a_hanging_task():
    pool = SandboxPool(1)
    try:
        t0 = time.monotonic()
        out = pool.run(("func", "time:sleep"), [((30,), {}), ((0,), {})], timeout_s=0.5)
        assert time.monotonic() - t0 < 0.5 + 5  # startup is not counted against the task; a kill is quick
        assert out[0].timed_out and not out[0].ok and "timed out after 0.5 s" in out[0].error
        assert out[1].ok and pool.replaced == 1
        out = pool.run(("func", "operator:truediv"), [((1, 0), {}), ((1, 4), {})], timeout_s=5)
        assert not out[0].ok and out[0].error.startswith("ZeroDivisionError") and out[1].value == 0.25
    finally:
        pool.close()


def test_check_timeout_gives_none_and_a_named_failure(monkeypatch):
    """A verification that runs past the limit: None for that sample, a failure by name, and the
    rest of the batch (fast path and other symbolic checks) still scored."""
    monkeypatch.setattr(grade, "SYMBOLIC_CHECK", "reward_helpers:slow_symbolic_check")
    rs = RewardSet([RewardSpec("math_answer", params={"timeout_s": 1.0})])
    s = rs.score([r"\boxed{\sqrt{2}\cdot\sqrt{8}}", r"\boxed{4}", r"\boxed{hang}"], answer=["4", "4", "x"])
    assert s.components["math_answer"] == [None, 1.0, 0.0]
    assert s.failures["math_answer"] == 1 and "timed out after 1 s" in s.errors["math_answer"][0]
    assert s.total == [0.0, 1.0, 0.0]
    with pytest.raises(VerificationTimeout):
        verify("4", r"\sqrt{16}", VerifyOptions(timeout_s=0.5))


def test_in_process_parsing_never_evaluates_strings(monkeypatch):
    """sympify/parse_expr (which call eval) are never reached while parsing answers."""
    import sympy.parsing.sympy_parser as parser_mod

    def boom(*a, **k):
        raise AssertionError(f"string evaluation attempted: {a[:1]}")

    # sympify(str) -> parse_expr -> eval_expr -> eval: cut the chain at both of its steps
    monkeypatch.setattr(parser_mod, "parse_expr", boom)
    monkeypatch.setattr(parser_mod, "eval_expr", boom)
    for gold, pred in [(r"\frac{1}{2}", "0.50"), (r"1.25", r"\frac{5}{4}"), ("3\\sqrt{2}", "sqrt(18)"), ("x^2", "x**2")]:
        assert check_symbolic(gold, pred) is True
    assert os.environ.get("RLTK_REWARD_WORKER") is None


def test_copying_the_question_after_the_answer_marker_scores_zero():
    """Reward hacking GRPO found (lr 6e-5, 220 steps): '#### 84 - 32' was verified as 52 and scored 100%."""
    score = get_reward("math_answer")
    hacked = ["84 - 32 = 56\n#### 84 - 32", "16 × 54 = 968\n#### 16 × 54", "#### (2 + 3) \\times 4"]
    assert score(hacked, answer=["52", "864", "20"]) == [0.0, 0.0, 0.0]
    assert score(["84 - 32 = 52\n#### 52", "#### 1/2", "\\boxed{\\sqrt{4}}"], answer=["52", "0.5", "2"]) == [1.0, 1.0, 1.0]
    assert get_reward("math_answer", number_needs_number=False)(hacked[:1], answer=["52"]) == [1.0]  # the old rule, by choice


def test_bare_arithmetic_check_is_linear_on_adversarial_input():
    """Model output is untrusted: a backtracking regex took 1.4 s on 12 '+'-joined runs of digits (exponential;
    199 runs, within the 1000-character cap, would never finish). The check is now a linear scan."""
    for n in (12, 100, 199):
        assert bare_arithmetic("+".join(["1111"] * n) + "x") is False
        assert bare_arithmetic("+".join(["1111"] * n)) is True
    assert [bare_arithmetic(x) for x in ("(2 + 3) * 4", "2*-3", "1/2", "1,234", "-16", "x - 1", "")] == \
        [True, True, False, False, False, False, False]


def test_symbolic_check_target_resolves_by_name():
    """Sandbox workers run tier 2 by the string name "rewards.math:check_symbolic": it must keep resolving."""
    assert SYMBOLIC_CHECK == grade.SYMBOLIC_CHECK == "rewards.math:check_symbolic"
    assert load_object(SYMBOLIC_CHECK) is check_symbolic is grade.check_symbolic
