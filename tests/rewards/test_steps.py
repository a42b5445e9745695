"""check_steps: every construct right and wrong, chains, calculator notes, rounding, hostile rows, GSM8K golds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from rewards.steps import MAX_TEXT_CHARS, check_steps

GSM8K_TRAIN = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "gsm8k" / "train.jsonl"


def verdicts(text: str) -> list[tuple[str, bool]]:
    return [(s.text, s.ok) for s in check_steps(text).steps]


@pytest.mark.parametrize("text, steps", [
    ("Natalia sold 48/2 = 24 clips.", [("48/2 = 24", True)]),
    ("Natalia sold 48/2 = 25 clips.", [("48/2 = 25", False)]),
    ("Speed = 120 / 40 = 3", [("120 / 40 = 3", True)]),
    ("Speed: 120 / 40 = 4", [("120 / 40 = 4", False)]),
    ("Total = 3 × $4 = $12", [("3 × $4 = $12", True)]),
    ("Total = 3 × $4 = $14", [("3 × $4 = $14", False)]),
    ("0.2 x 50 = $10 and 3 X 5 = 15 and 7 * 2 = 14", [("0.2 x 50 = $10", True), ("3 X 5 = 15", True), ("7 * 2 = 14", True)]),
    ("12 ÷ 4 = 3, 12 ÷ 4 = 4", [("12 ÷ 4 = 3", True), ("12 ÷ 4 = 4", False)]),
    ("10 − 3 = 7 but 10 − 3 = 6", [("10 − 3 = 7", True), ("10 − 3 = 6", False)]),
    ("1,200 + 300 = 1,500; 1,200 + 300 = 1,600", [("1,200 + 300 = 1,500", True), ("1,200 + 300 = 1,600", False)]),
    ("Discount = 20% × $50 = $10", [("20% × $50 = $10", True)]),
    ("20% of 50 = 10, 20% of 50 = 12", [("20% of 50 = 10", True), ("20% of 50 = 12", False)]),
    ("50 * 20% = 10 and 0.2 * 50 = 10", [("50 * 20% = 10", True), ("0.2 * 50 = 10", True)]),
    ("Average = (80 + 90 + 100) / 3 = 90", [("(80 + 90 + 100) / 3 = 90", True)]),
    ("Average = (80 + 90 + 100) / 3 = 91", [("(80 + 90 + 100) / 3 = 91", False)]),
    ("Minutes = 2.5 × 60 = 150 minutes", [("2.5 × 60 = 150", True)]),
    ("Time = 120 / 40 = 3 hours", [("120 / 40 = 3", True)]),
    ("He works 2 hours x 60 = 120 minutes", [("2 hours x 60 = 120", True)]),
    ("120 km / 40 = 3 hours, $12 dollars * 2 = $24 dollars", [("120 km / 40 = 3", True), ("$12 dollars * 2 = $24", True)]),
    ("-3 + 5 = 2 and 3 * -2 = -6", [("-3 + 5 = 2", True), ("3 * -2 = -6", True)]),
    ("2^10 = 1024 and 2**10 = 1000", [("2^10 = 1024", True), ("2**10 = 1000", False)]),
    ("Sam will be 3(17)=51 years old", [("3(17)=51", True)]),
    ("so 14 * 1 1/2 = 21 birds", [("14 * 1 1/2 = 21", True)]),
    ("her father was 60 / 3/4 = 80 years", [("60 / 3/4 = 80", True)]),
    ("9/21 * 100% = 42.86 and 3/4 * 100 = 75%", [("9/21 * 100% = 42.86", True), ("3/4 * 100 = 75%", True)]),
    ("20 / 240 = 0.0833... so", [("20 / 240 = 0.0833...", True)]),
    # compound and one-letter units: "km/h", "$12/hour", "2 h", "3 m/s" are units, not divisions by a word
    ("Speed = 120 / 40 = 4 km/h", [("120 / 40 = 4", False)]),
    ("Distance = 60 km/h x 2 h = 120 km", [("60 km/h x 2 h = 120", True)]),
    ("Pay = $12/hour x 3 hours = $37", [("$12/hour x 3 hours = $37", False)]),
    ("Speed = 120/40 = 3 m/s", [("120/40 = 3", True)]),
    ("5 m + 3 m = 8 m, 2 kg x 4 = 9 kg", [("5 m + 3 m = 8", True), ("2 kg x 4 = 9", False)]),
])
def test_constructs(text, steps):
    assert verdicts(text) == steps


@pytest.mark.parametrize("text", [
    "= 24", "x = 24", "Answer = 24 apples", "3 hours = 180 minutes", "#### 72",
    "Day 1 = 5 apples", "24 = 24", "(3 + 4 = 7 is wrong in prose?) nope: x",
    "then 1.2Y = 3",  # a letter stuck to a number is a name, not a unit

])
def test_not_steps(text):
    r = [s for s in check_steps(text).steps if s.text != "3 + 4 = 7"]
    assert r == []


@pytest.mark.parametrize("text", [
    "Combining like terms, X*5 + 1 = 31.",  # a variable: not the claim 5 + 1 = 31
    "So (X+10)*3/2 = 45.",
    "22 - 16 = 16 + x - 16",
    "he had $100 000 x 10/100 = $10,000",  # a space as thousands separator: ambiguous
    "the sun sets at 6:00+48=6:48 PM",  # a time
    "it is √(144) = 12",
    "so sqrt(16) = 5",
])
def test_unreadable_claims_are_not_steps_but_counted(text):
    r = check_steps(text)
    assert r.n == 0 and r.unparsed == 1 and r.detail()["unparsed"] == 1


def test_chains_give_one_claim_per_adjacent_pair():
    r = check_steps("3 + 4 = 7 = 14/2")
    assert [(s.text, s.ok) for s in r.steps] == [("3 + 4 = 7", True), ("7 = 14/2", True)]
    r = check_steps("3 + 4 = 7 = 14/3")
    assert [s.ok for s in r.steps] == [True, False] and r.first_error.reason.startswith("14 / 3 is 14/3")
    assert [s.ok for s in check_steps("2 * 3 = 6 = 3 + 3 = 7").steps] == [True, True, False]
    assert verdicts("3 + 4 = 2 + 5") == [("3 + 4 = 2 + 5", True)]


def test_calculator_notes_verified_and_not_counted_twice():
    text = "Natalia sold 48/2 = <<48/2=24>>24 clips.\nThen 48+24 = <<48+24=72>>72.\n#### 72"
    r = check_steps(text)
    assert r.n == 2 and r.all_valid and all(s.annotated for s in r.steps)
    assert [(s.start, s.end) for s in r.steps] == [(text.index("48/2="), text.index(">>")), (text.index("48+24="), text.rindex(">>"))]
    r = check_steps("Weng earns 12/60 = $<<12/60=0.3>>0.3 per minute.")
    assert r.n == 1 and not r.all_valid and r.steps[0].reason == "12 / 60 is 1/5 (≈ 0.2), not 0.3"
    # the visible text says something else than its note: both are checked
    r = check_steps("so 8*3 = <<80*3=240>>240 cookies")
    assert [(s.text, s.ok) for s in r.steps] == [("8*3 = <<80*3=240>>240", False), ("80*3=240", True)]


@pytest.mark.parametrize("text, ok", [
    ("10/3 = 3.33", True), ("10/3 = 3.3", True), ("10/3 = 3.4", False), ("10/3 = 3", False),
    ("10/3 = 3.333", True), ("10/3 = 3.334", False), ("2/3 = 0.67", True), ("2/3 = 0.66", False),
    ("1/8 = 0.125", True), ("1/8 = 0.13", True), ("1/8 = 0.12", True), ("1/8 = 0.1", True), ("7/2 = 3.5", True),
    ("7/2 = 4", False), ("0.1 + 0.2 = 0.3", True), ("6 * 2.5 = 15.00", True), ("1/3 = 33.33%", True), ("1/3 = 33%", False),
])
def test_rounding_rules(text, ok):
    (step,) = check_steps(text).steps
    assert step.ok is ok, step


def test_step_fields_and_detail():
    text = "Time = 120 / 40 = 4 hours.\nCost = 7 / 2 = 3\n1 + 1 = 2"
    r = check_steps(text)
    first = r.steps[0]
    assert (first.text, text[first.start:first.end], first.expected, first.claimed) == ("120 / 40 = 4", "120 / 40 = 4", "3", "4")
    assert first.reason == "120 / 40 is 3, not 4" and r.steps[1].expected == "7/2"
    assert (r.n, r.n_valid, r.all_valid, r.first_error) == (3, 1, False, first)
    d = r.detail()
    assert d == {"steps": 3, "valid": 1, "wrong": [
        {"n": 1, "at": [7, 19], "step": "120 / 40 = 4", "reason": "120 / 40 is 3, not 4"},
        {"n": 2, "at": [34, 43], "step": "7 / 2 = 3", "reason": "7 / 2 is 7/2 (≈ 3.5), not 3"}]}
    assert json.loads(json.dumps(d)) == d
    assert not check_steps("no numbers here").all_valid and check_steps("").n == 0


HOSTILE = {
    "huge power": "9^9^9 = 1 and 2^99999 = 3 and 10**10**10 = 4",
    "10k-digit number": "1" * 10_000 + " + 1 = " + "1" * 9_999 + "2",
    "10k-digit claimed": "5 + 5 = " + "9" * 10_000,
    "100k chars of 1+1=2": "1+1=2\n" * 17_000,
    "100k chars without separators": "1+1=2" * 20_000,
    "nested parens 5k deep": "(" * 5000 + "1" + ")" * 5000 + " + 1 = 2",
    "unclosed parens": "(" * 20_000 + "= 3",
    "operators only": "+-*/" * 5000 + "= 1",
    "unicode digits": "٣ + ٤ = ٧ and ３ + ４ = ７ and 𝟑 + 𝟒 = 𝟕",
    "injection": "__import__('os').system('echo hi') = 0 and eval(1+1) = 2 and ().__class__ = 1",
    "many notes": "<<1+1=2>>" * 5000,
    "unterminated notes": "<<1+1=2" * 5000,
    "division by zero": "5 / 0 = 1 and 0 / 0 = 0",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_rows_return_fast(name):
    t0 = time.thread_time()  # CPU time: the verdict and this bound hold on a loaded machine too
    r = check_steps(HOSTILE[name])
    assert time.thread_time() - t0 < 1.0, name
    json.dumps(r.detail())
    if name == "100k chars of 1+1=2":
        assert r.n > 100 and r.all_valid and r.detail()["stopped"]  # cut at 20k chars (or the time limit, when loaded)
    if name in ("huge power", "10k-digit number", "10k-digit claimed", "division by zero"):
        assert r.n == 0 and r.unparsed >= 1
    if name == "injection":
        assert r.n == 0 and "1 + 1" not in json.dumps(r.detail())


def test_time_limit_stops_and_says_so():
    text = "\n".join(f"{i} * {i + 1} = {i * (i + 1)}" for i in range(3000))[:MAX_TEXT_CHARS]
    r = check_steps(text, time_limit_s=0.001)
    assert r.stopped.startswith("time limit") and r.n < 3000 and all(s.ok for s in r.steps)
    whole = check_steps(text, time_limit_s=30)
    assert whole.stopped == "" and whole.n > 1000 and whole.all_valid


def test_time_limit_counts_cpu_time_not_wall_time(monkeypatch):
    """A descheduled checker (here: sleeping between claims, 0.5 s of wall time against a 0.1 s limit)
    still checks every claim: the verdict does not depend on the machine's load (CI failed once on a
    gold solution whose claims were cut at 0 by a wall-clock limit)."""
    from rewards import steps

    def slow(text):
        for claim in steps_parse_find_claims(text):
            time.sleep(0.05)
            yield claim

    steps_parse_find_claims = steps.find_claims
    monkeypatch.setattr(steps, "find_claims", slow)
    text = "\n".join(f"{i} + 1 = {i + 1}" for i in range(10))
    r = check_steps(text, time_limit_s=0.1)
    assert r.stopped == "" and r.n == 10 and r.all_valid


def test_time_limit_does_not_count_garbage_collection(monkeypatch):
    """A full garbage collection of a large process (here ~0.12 s over a million cyclic objects) that lands inside
    a check is not the check's time: the test suite once cut a gold solution at claim 0 this way, every run."""
    import gc

    from rewards import steps

    junk = []
    for _ in range(500_000):  # cycles, so only the cyclic collector can free them (measured: ~0.12 s per collect)
        a, b = [], []
        a.append(b), b.append(a)
        junk.append(a)

    def collecting(text):
        for claim in real(text):
            gc.collect()
            yield claim

    real = steps.find_claims
    monkeypatch.setattr(steps, "find_claims", collecting)
    t0 = time.thread_time()
    r = check_steps("1 + 1 = 2\n2 * 3 = 6\n6 - 1 = 5", time_limit_s=0.05)
    assert time.thread_time() - t0 > 0.05  # the collections alone were past the limit (~0.36 s here: 7x)
    assert r.stopped == "" and r.n == 3 and r.all_valid
    del junk


@pytest.fixture(scope="module")
def gsm8k_golds() -> list[str]:
    if not GSM8K_TRAIN.is_file():
        pytest.skip(f"{GSM8K_TRAIN} not found (shared/data beside the repo)")
    with GSM8K_TRAIN.open() as f:
        return [json.loads(line)["answer"] for _, line in zip(range(500), f)]


def test_gsm8k_calculator_notes_verify(gsm8k_golds):
    notes = sum(g.count("<<") for g in gsm8k_golds)
    steps = [s for g in gsm8k_golds for s in check_steps(g).steps if s.annotated]
    assert len(steps) >= 0.97 * notes  # the rest restate a number (<<64=64>>) or use //
    assert sum(s.ok for s in steps) >= 0.99 * len(steps), [s for s in steps if not s.ok][:5]


def test_gsm8k_one_changed_number_is_caught(gsm8k_golds):
    caught = total = 0
    for g in gsm8k_golds[:200]:
        a = g.find("<<")
        eq = g.find("=", a)
        if a < 0 or eq < 0:
            continue
        end = g.find(">>", eq)
        value = g[eq + 1:end]
        if not value.replace(".", "").isdigit():
            continue
        wrong = g[:eq + 1] + str(int(float(value)) + 1) + g[end:]
        total += 1
        r = check_steps(wrong)
        caught += any(not s.ok and s.annotated for s in r.steps)
    assert total > 150 and caught == total
