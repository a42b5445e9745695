"""Peer benchmark: rltk's ``math_answer`` reward and Math-Verify 0.9 (``parse`` + ``verify``) judging the same
(gold, completion) pairs side by side: accuracy against labels, agreement, checks per second, every disagreement.

Parts: (a) GSM8K test golds — each ``#### n`` line as the completion for its own gold (equal) and for the next
row's gold (equal iff the two exact values coincide); (b) MATH-500 golds, ``\\boxed{}`` in a sentence, against
their own gold and the next row's (equal iff the gold strings are the same up to whitespace, except the pairs
in ``HAND_LABELS``, checked by hand); (c) ``math_hard_set.jsonl`` beside this file (tiny/huge numbers,
scientific notation, rounding, intervals, sets, units, percent, LaTeX variants, injections, bombs), labelled
by their mathematics. rltk goes through its public path, ``rewards.get_reward("math_answer")``, one batch per
pass; Math-Verify parses the gold as gold (``$gold$``, its documented form) and the completion with its default
configs. Both run in this process's CPU: Math-Verify in one child process per part, so a hang or a crash
costs ``--mv-timeout`` seconds and counts as "not equal" (noted), never a stuck benchmark. A figure is the
median of ``--passes`` timed passes after one warm-up pass, whose verdicts are the ones reported.

    python benchmarks/bench_vs_math_verify.py                 # all parts, 3 timed passes
    python benchmarks/bench_vs_math_verify.py --parts hard --passes 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import sys
import time
from fractions import Fraction
from importlib import metadata
from pathlib import Path

from machine_info import machine_line  # benchmarks/ (the script's folder)
from rewards import get_reward
from rewards.math import gold_answer

try:
    import math_verify
except ImportError:  # optional peer
    math_verify = None

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
HARD_SET = Path(__file__).resolve().parent / "math_hard_set.jsonl"
MV_INNER_TIMEOUT_S = 5.0  # parse() and verify() give up after 5 s each by default (then: not equal)
# MATH-500 (gold, next row's gold) pairs whose strings differ but whose answers are the same, found where a
# tool said "equal" against the string label and checked by hand; every other such pair is in the listing
HAND_LABELS: dict[tuple[str, str], bool] = {
    ("5", "x=5"): True,  # rows 22, 23 (test/algebra/1837, 2193): the answer "x = 5" is the value 5
}


# --- cases ---------------------------------------------------------------------------------------

def _case(gold: str, completion: str, equal: bool, note: str = "") -> dict:
    return {"gold": gold, "answer": completion, "equal": equal, "why": note}


def gsm8k_cases(rows: list[dict]) -> list[dict]:
    golds = [gold_answer(r["answer"]) for r in rows]
    value = [Fraction(g.replace(",", "")) for g in golds]
    out = [_case(g, f"#### {g}", True, "self") for g in golds]
    for i, g in enumerate(golds):
        j = (i + 1) % len(golds)
        out.append(_case(g, f"#### {golds[j]}", value[i] == value[j], f"other (row {j})"))
    return out


def _ws(s: str) -> str:
    return re.sub(r"\s+", "", s)


def math500_cases(rows: list[dict]) -> list[dict]:
    golds = [r["answer"] for r in rows]
    box = "The final answer is $\\boxed{%s}$."
    out = [_case(g, box % g, True, "self") for g in golds]
    for i, g in enumerate(golds):
        o = golds[(i + 1) % len(golds)]
        hand = (g, o) in HAND_LABELS
        out.append(_case(g, box % o, HAND_LABELS[(g, o)] if hand else _ws(g) == _ws(o), "other, labelled by hand" * hand))
    return out


def hard_cases(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# --- the two tools -------------------------------------------------------------------------------

def rltk_pass(cases: list[dict]) -> tuple[list[bool], float]:
    """One batch through the public reward; a check that failed (None) counts as not equal."""
    reward = get_reward("math_answer")
    t0 = time.perf_counter()
    scores = reward([c["answer"] for c in cases], answer=[c["gold"] for c in cases])
    return [s == 1.0 for s in scores], time.perf_counter() - t0


def _mv_check(gold: str, completion: str) -> bool:
    return bool(math_verify.verify(math_verify.parse(f"${gold}$"), math_verify.parse(completion)))


def _mv_worker(conn, cases: list[tuple[str, str]], start: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # Math-Verify prints "Timeout during comparison": the verdict and the time say it
    os.dup2(devnull, 2)
    for i in range(start, len(cases)):
        t0 = time.perf_counter()
        try:
            verdict, error = _mv_check(*cases[i]), ""
        except Exception as e:  # noqa: BLE001 - a peer's failure is a "not equal", reported with its name
            verdict, error = False, f"{type(e).__name__}"
        if time.perf_counter() - t0 >= MV_INNER_TIMEOUT_S and not error:
            error = f"ran {time.perf_counter() - t0:.1f} s: its own {MV_INNER_TIMEOUT_S:g} s timeout"
        conn.send((i, verdict, time.perf_counter() - t0, error))
    conn.close()


def mv_pass(cases: list[dict], timeout_s: float) -> tuple[list[bool], float, dict[int, str]]:
    """One pass of Math-Verify in a child process: (verdicts, summed seconds of its checks, notes by case).
    A check that runs past ``timeout_s`` (the child is killed and restarted after it) costs ``timeout_s``."""
    pairs = [(c["gold"], c["answer"]) for c in cases]
    verdicts, total, notes, start = [False] * len(pairs), 0.0, {}, 0
    ctx = mp.get_context("fork")
    while start < len(pairs):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_mv_worker, args=(child, pairs, start), daemon=True)
        proc.start()
        child.close()
        nxt = start
        while nxt < len(pairs):
            if not parent.poll(timeout_s):
                notes[nxt] = f"timeout ({timeout_s:g} s)" if proc.is_alive() else "crashed"
                total += timeout_s
                nxt += 1
                break
            i, verdict, secs, error = parent.recv()
            verdicts[i], total, nxt = verdict, total + secs, i + 1
            if error:
                notes[i] = error
        proc.kill()
        proc.join()
        start = nxt
    return verdicts, total, notes


# --- one part ------------------------------------------------------------------------------------

def run_part(name: str, cases: list[dict], passes: int, mv_timeout: float) -> dict:
    rltk_v, _ = rltk_pass(cases)  # warm-up pass: workers started, caches filled; its verdicts are reported
    rltk_t = [rltk_pass(cases)[1] for _ in range(passes)]
    part = {"part": name, "cases": len(cases), "rltk": rltk_v, "rltk_s": statistics.median(rltk_t)}
    if math_verify is not None:
        mv_v, _, notes = mv_pass(cases, mv_timeout)
        part.update(mv=mv_v, mv_notes=notes, mv_s=statistics.median(mv_pass(cases, mv_timeout)[1] for _ in range(passes)))
    return part


def _acc(verdicts: list[bool], cases: list[dict]) -> float:
    return sum(v == c["equal"] for v, c in zip(verdicts, cases)) / len(cases)


def _short(s: str, n: int = 70) -> str:
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[:n - 25] + f"...({len(s)} chars)..." + s[-12:]


def _who_is_right(rltk: bool, mv: bool | None, label: bool) -> str:
    if rltk == label and mv in (None, label):
        return "both"
    if mv is not None and rltk != label and mv != label:
        return "both wrong"
    return "rltk" if rltk == label else "Math-Verify"


def print_part(part: dict, cases: list[dict]) -> list[dict]:
    """The part's table row is printed by the caller; here every disagreement (tool vs tool or vs label)."""
    mv = part.get("mv")
    rows = []
    for i, c in enumerate(cases):
        r, m = part["rltk"][i], (mv[i] if mv is not None else None)
        if r == c["equal"] and (m is None or m == c["equal"]) and "by hand" not in c.get("why", ""):
            continue
        right = _who_is_right(r, m, c["equal"])
        note = part.get("mv_notes", {}).get(i, "")
        rows.append({"gold": c["gold"], "answer": c["answer"], "rltk": r, "mv": m, "label": c["equal"],
                     "right": right, "mv_note": note, "why": c.get("why", "")})
    if rows:
        print(f"\n{part['part']}: {len(rows)} disagreement(s) or pair(s) labelled by hand")
        print(f"  {'gold':32} {'completion':44} {'rltk':5} {'MV':5} {'label':5} right   (why / MV note)")
        for d in rows:
            print(f"  {_short(d['gold'], 32):32} {_short(d['answer'], 44):44} {d['rltk']!s:5} {d['mv']!s:5} "
                  f"{d['label']!s:5} {d['right']:11} {d['why']} {('[MV: ' + d['mv_note'] + ']') if d['mv_note'] else ''}")
    return rows


def false_equal(part: dict, cases: list[dict]) -> int:
    """Pairs labelled unequal that rltk judged equal (with the hard set and GSM8K: distinct exact values)."""
    return sum(r and not c["equal"] for r, c in zip(part["rltk"], cases))


# --- main ----------------------------------------------------------------------------------------

def load_parts(names: list[str]) -> dict[str, list[dict]]:
    parts = {}
    for name, path, build in (("gsm8k", DATA / "gsm8k" / "test.jsonl", gsm8k_cases),
                              ("math500", DATA / "math500" / "test.jsonl", math500_cases)):
        if name in names:
            if path.is_file():
                with open(path) as f:
                    parts[name] = build([json.loads(line) for line in f if line.strip()])
            else:
                print(f"skip {name}: {path} not found")
    if "hard" in names:
        parts["hard"] = hard_cases(HARD_SET)
    return parts


def print_table(results: list[dict]) -> None:
    head = f"{'part':8} {'cases':>6} {'rltk acc':>9} {'MV acc':>8} {'agree':>7} {'rltk checks/s':>14} {'MV checks/s':>12}"
    print("\n" + head + "\n" + "-" * len(head))
    for p in results:
        cases = p["case_list"]
        mv_acc = f"{_acc(p['mv'], cases):.2%}" if "mv" in p else "-"
        agree = f"{sum(a == b for a, b in zip(p['rltk'], p['mv'])) / len(cases):.2%}" if "mv" in p else "-"
        mv_rate = f"{p['cases'] / p['mv_s']:.0f}" if "mv" in p else "-"
        print(f"{p['part']:8} {p['cases']:>6} {_acc(p['rltk'], cases):>9.2%} {mv_acc:>8} {agree:>7} "
              f"{p['cases'] / p['rltk_s']:>14.0f} {mv_rate:>12}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", nargs="+", default=["gsm8k", "math500", "hard"], choices=["gsm8k", "math500", "hard"])
    ap.add_argument("--passes", type=int, default=3, help="timed passes per tool and part (median reported)")
    ap.add_argument("--mv-timeout", type=float, default=15.0, help="seconds before a Math-Verify check counts as hung")
    ap.add_argument("--json", type=Path, help="write the figures and disagreements here")
    args = ap.parse_args(argv)
    print(machine_line())
    if math_verify is None:
        print("Math-Verify is not installed (pip install math-verify==0.9.0): rltk figures only")
    else:
        print(f"Math-Verify {metadata.version('math-verify')}; rltk math_answer (defaults)")
    results = []
    for name, cases in load_parts(args.parts).items():
        part = run_part(name, cases, max(1, args.passes), args.mv_timeout)
        part["case_list"] = cases
        results.append(part)
    print_table(results)
    report = []
    for p in results:
        rows = print_part(p, p["case_list"])
        fe = false_equal(p, p["case_list"])
        print(f"  {p['part']}: rltk judged {fe} pair(s) labelled unequal as equal")
        report.append({k: v for k, v in p.items() if k not in ("case_list", "rltk", "mv", "mv_notes")} |
                      {"disagreements": rows, "rltk_false_equal": fe})
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
