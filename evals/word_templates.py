"""The word-problem families of :mod:`evals.word_problems`: each draws integers answer-first (every step's
result is a whole number) and writes the question and one named equation per step for 2, 3 or 4 steps."""

from __future__ import annotations

import math
import random
from typing import Callable, NamedTuple

NAMES = ("Ann", "Ben", "Carla", "Dev", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jonas", "Kemi", "Liam", "Mia", "Noor")


class Draft(NamedTuple):
    """One drawn problem: the numbers that define it (hashed for its split), its text, its gold equations."""

    numbers: tuple[int, ...]
    question: str
    lines: tuple[str, ...]
    final: int


def eq(name: str, expr: str, result: int | str, unit: str = "") -> str:
    """One gold step, ``Name = expression = result unit``.

    >>> eq("Time", "120 / 40", 3, "hours")
    'Time = 120 / 40 = 3 hours'
    """
    unit = "hour" if unit == "hours" and result == 1 else unit
    return f"{name} = {expr} = {result}{' ' + unit if unit else ''}"


def _pick(rng: random.Random, n: int) -> list[str]:
    return rng.sample(NAMES, n)


MOVERS = (("A car", "drives", "it", "drive", "km", 100), ("A train", "travels", "it", "travel", "km", 120),
          ("A cyclist", "rides", "she", "ride", "km", 30), ("A runner", "runs", "he", "run", "km", 14),
          ("A boat", "sails", "it", "sail", "miles", 40), ("A truck", "drives", "it", "drive", "miles", 70))


def distance(rng: random.Random, steps: int) -> Draft | None:
    subj, verb, who, base, unit, fast = rng.choice(MOVERS)
    s, t = rng.randint(fast // 4, fast), rng.randint(2, 6)
    t2 = rng.choice([v for v in range(2, 9) if v != t])
    d, d2 = s * t, s * t2
    start = rng.choice((f"{subj} {verb} {d} {unit} in {t} hours.", f"In {t} hours, {subj.lower()} {verb} {d} {unit}."))
    lines = [eq("Speed", f"{d} / {t}", s, f"{unit} per hour"), eq("Distance", f"{s} × {t2}", d2, unit)]
    if steps == 2:
        q = f"{start} At the same speed, how many {unit} does {who} {base} in {t2} hours?"
        return Draft((d, t, t2), q, tuple(lines), d2)
    h = rng.randint(1, 5)
    left = s * h if steps == 4 else rng.randint(1, 300)
    total = d2 + left
    trip = rng.choice((f"The whole trip is {total} {unit} long.", f"The route is {total} {unit} in all."))
    lines.append(eq("Left", f"{total} - {d2}", left, unit))
    if steps == 3:
        q = f"{start} {trip} At the same speed, how many {unit} are left after {t2} hours?"
        return Draft((d, t, total, t2), q, tuple(lines), left)
    lines.append(eq("Time", f"{left} / {s}", h, "hours"))
    q = f"{start} {trip} After {t2} hours at the same speed, how many more hours does {who} need to finish?"
    return Draft((d, t, total, t2), q, tuple(lines), h)


SHOP = (("books", "magazines"), ("shirts", "hats"), ("tickets", "snacks"), ("plants", "pots"), ("toys", "puzzles"))


def shopping(rng: random.Random, steps: int) -> Draft | None:
    (name,) = _pick(rng, 1)
    one, two = rng.choice(SHOP)
    a, p, b, q = rng.randint(2, 12), rng.randint(2, 25), rng.randint(2, 12), rng.randint(2, 25)
    x, y = a * p, b * q
    lines = [eq(one.capitalize(), f"{a} × ${p}", f"${x}")]
    cost = x
    if steps >= 3:
        lines += [eq(two.capitalize(), f"{b} × ${q}", f"${y}"), eq("Total", f"${x} + ${y}", f"${x + y}")]
        cost = x + y
    bill = rng.choice([v for v in (20, 50, 100, 200, 500) if v > cost] or [0])
    if steps != 3 and not bill:
        return None
    buy = rng.choice((f"{name} buys {a} {one} at ${p} each", f"{name} gets {a} {one} for ${p} each"))
    if steps == 2:
        lines.append(eq("Change", f"${bill} - ${cost}", f"${bill - cost}"))
        q2 = f"{buy}. {name} pays with a ${bill} bill. How many dollars of change does {name} get?"
        return Draft((a, p, bill), q2, tuple(lines), bill - cost)
    more = f"{buy}, and {b} {two} at ${q} each."
    if steps == 3:
        ask = rng.choice(("How many dollars does {n} spend in all?", "What is the total cost in dollars?"))
        return Draft((a, p, b, q), f"{more} {ask.format(n=name)}", tuple(lines), cost)
    lines.append(eq("Change", f"${bill} - ${cost}", f"${bill - cost}"))
    q4 = f"{more} {name} pays with a ${bill} bill. How many dollars of change does {name} get?"
    return Draft((a, p, b, q, bill), q4, tuple(lines), bill - cost)


def discount(rng: random.Random, steps: int) -> Draft | None:
    (name,) = _pick(rng, 1)
    item, items = rng.choice((("jacket", "jackets"), ("lamp", "lamps"), ("backpack", "backpacks"),
                              ("watch", "watches"), ("chair", "chairs")))
    k = rng.choice((5, 10, 15, 20, 25, 30, 40, 50, 75))
    unit = 100 // math.gcd(k, 100)
    price = unit * rng.randint(max(1, 20 // unit), 600 // unit)
    off = k * price // 100
    sale = price - off
    lines = [eq("Discount", f"{k}% × ${price}", f"${off}"), eq("Price", f"${price} - ${off}", f"${sale}")]
    deal = rng.choice((f"with {k}% off", f"on sale at {k}% off", f"with a {k}% discount"))  # after "buys it" / "each"
    if steps == 2:
        q = f"A {item} costs ${price}. {name} buys it {deal}. How many dollars does {name} pay?"
        return Draft((price, k), q, tuple(lines), sale)
    n = rng.randint(2, 5)
    lines.append(eq("Cost", f"{n} × ${sale}", f"${n * sale}"))
    buy = f"{items.capitalize()} cost ${price} each. {name} buys {n} {items}, each {deal}."
    if steps == 3:
        return Draft((price, k, n), f"{buy} How many dollars does {name} pay?", tuple(lines), n * sale)
    fee = rng.randint(3, 25)
    lines.append(eq("Total", f"${n * sale} + ${fee}", f"${n * sale + fee}"))
    q = f"{buy} Delivery costs ${fee} more. How many dollars does {name} pay in all?"
    return Draft((price, k, n, fee), q, tuple(lines), n * sale + fee)


# place, part, its step name, the rest's name and text, the groups, per-group step name and text, group, extras
PLACES = (("A school has {N} students.", "{k}% of them walk to school", "Walkers", "Riders", "students do not walk",
           "The others ride {g} buses with the same number on each bus.", "Bus", "students ride each bus", "bus", "teachers"),
          ("A club has {N} members.", "{k}% of them are children", "Children", "Adults", "members are adults",
           "The adults form {g} teams of equal size.", "Team", "adults are in each team", "team", "coaches"),
          ("A camp has {N} campers.", "{k}% of them go swimming", "Swimmers", "Hikers", "campers do not swim",
           "The rest go hiking in {g} equal groups.", "Group", "campers are in each hiking group", "group", "guides"))


def percent(rng: random.Random, steps: int) -> Draft | None:
    place, part, part_name, rest_name, rest_text, split, each_name, each_text, grp, extra = rng.choice(PLACES)
    k = rng.choice((10, 20, 25, 30, 40, 50, 60, 75, 80))
    unit = 100 // math.gcd(k, 100)
    n = unit * rng.randint(max(1, 20 // unit), 1200 // unit)
    c = k * n // 100
    rest = n - c
    lines = [eq(part_name, f"{k}% × {n}", c), eq(rest_name, f"{n} - {c}", rest)]
    head = f"{place.format(N=n)} {part.format(k=k)}."
    if steps == 2:
        return Draft((n, k), f"{head} How many {rest_text}?", tuple(lines), rest)
    groups = [g for g in range(2, 10) if rest % g == 0]
    if not groups:
        return None
    g = rng.choice(groups)
    lines.append(eq(each_name, f"{rest} / {g}", rest // g))
    body = f"{head} {split.format(g=g)}"
    if steps == 3:
        return Draft((n, k, g), f"{body} How many {each_text}?", tuple(lines), rest // g)
    t = rng.randint(2, 5)
    lines.append(eq("People", f"{rest // g} + {t}", rest // g + t))
    q = f"{body} Each {grp} also has {t} {extra}. How many people are in each {grp}?"
    return Draft((n, k, g, t), q, tuple(lines), rest // g + t)


WORKERS = (("printer", "pages", "prints"), ("baker", "cookies", "bakes"), ("machine", "boxes", "packs"),
           ("pump", "liters", "fills"), ("team", "bricks", "lays"))


def work(rng: random.Random, steps: int) -> Draft | None:
    who, things, does = rng.choice(WORKERS)
    r1, r2, h = rng.randint(5, 60), rng.randint(5, 60), rng.randint(2, 8)
    r, made = r1 + r2, (r1 + r2) * h
    lines = [eq("Rate", f"{r1} + {r2}", r, f"{things} per hour"), eq("Made", f"{r} × {h}", made, things)]
    head = rng.choice((f"One {who} {does} {r1} {things} per hour and another {does} {r2} {things} per hour.",
                       f"Two {who}s work together: the first {does} {r1} {things} an hour, the second {r2}."))
    if steps == 2:
        return Draft((r1, r2, h), f"{head} How many {things} do they make together in {h} hours?", tuple(lines), made)
    more = rng.randint(1, 6)
    left = r * more if steps == 4 else rng.randint(1, 500)
    order = made + left
    lines.append(eq("Left", f"{order} - {made}", left, things))
    if steps == 3:
        q = f"{head} The job needs {order} {things}. How many {things} are still left after {h} hours?"
        return Draft((r1, r2, order, h), q, tuple(lines), left)
    lines.append(eq("Hours", f"{left} / {r}", more, "hours"))
    q = f"{head} The job needs {order} {things}. After {h} hours, how many more hours do they need to finish?"
    return Draft((r1, r2, order, h), q, tuple(lines), more)


SCORES = (("{n} scored {v} on three tests", "test", "points", 40, 100),
          ("{n} ran {v} km on three days", "day", "km", 2, 30),
          ("{n} read {v} pages on three evenings", "evening", "pages", 10, 90))


def average(rng: random.Random, steps: int) -> Draft | None:
    (name,) = _pick(rng, 1)
    text, slot, unit, lo, hi = rng.choice(SCORES)
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    c = rng.choice([v for v in range(lo, hi + 1) if steps > 2 or (a + b + v) % 3 == 0])
    s = a + b + c
    head = text.format(n=name, v=f"{a}, {b} and {c}")
    if steps == 2:
        lines = (eq("Sum", f"{a} + {b} + {c}", s), eq("Average", f"{s} / 3", s // 3))
        return Draft((a, b, c), f"{head}. What is the average per {slot}?", lines, s // 3)
    fits = [x for x in range(lo, hi + 1) if (s + x) % 4 == 0 and (steps == 3 or x > a)]
    if not fits:
        return None
    x = rng.choice(fits)
    m = (s + x) // 4
    lines = [eq("Needed", f"{m} × 4", 4 * m), eq("Sum", f"{a} + {b} + {c}", s), eq("Fourth", f"{4 * m} - {s}", x)]
    goal = f"to average {m} {unit} over four {slot}s"
    if steps == 3:
        return Draft((a, b, c, m), f"{head}. How many {unit} are needed on the fourth {slot} {goal}?", tuple(lines), x)
    lines.append(eq("More", f"{x} - {a}", x - a))
    q = f"{head}. {goal.capitalize()}, how many more {unit} than on the first {slot} are needed on the fourth {slot}?"
    return Draft((a, b, c, m), q, tuple(lines), x - a)


# big unit, small unit, factor, 2-step question, 3-step story, 4-step sharing and its question
UNITS = (("hours", "minutes", 60, "A movie lasts {a} hours and {b} minutes. How many minutes is that?",
          "{n} watches {k} movies that each last {a} hours and {b} minutes.",
          "{n} watches them over {g} evenings, the same time each evening. How many minutes is that per evening?"),
         ("dozen", "eggs", 12, "A box holds {a} dozen and {b} eggs. How many eggs is that?",
          "{n} has {k} boxes that each hold {a} dozen and {b} eggs.",
          "{n} shares them equally among {g} friends. How many eggs does each friend get?"),
         ("km", "meters", 1000, "A route is {a} km and {b} meters long. How many meters is that?",
          "{n} walks a route of {a} km and {b} meters, {k} times.",
          "{n} spreads the walking evenly over {g} days. How many meters does {n} walk each day?"),
         ("weeks", "days", 7, "A course lasts {a} weeks and {b} days. How many days is that?",
          "{n} takes {k} courses, one after another, that each last {a} weeks and {b} days.",
          "The time is split into {g} terms of equal length. How many days is each term?"),
         ("feet", "inches", 12, "A board is {a} feet and {b} inches long. How many inches is that?",
          "{n} has {k} boards that are each {a} feet and {b} inches long.",
          "{n} cuts the total length into {g} equal pieces. How many inches long is each piece?"))


def convert(rng: random.Random, steps: int) -> Draft | None:
    (name,) = _pick(rng, 1)
    _, small, f, q2, story, share = rng.choice(UNITS)
    a, b = rng.randint(1, 9 if f < 1000 else 3), rng.randint(2, f - 1 if f < 1000 else 999)
    each = a * f + b
    lines = [eq(small.capitalize(), f"{a} × {f}", a * f, small), eq("Total", f"{a * f} + {b}", each, small)]
    if steps == 2:
        return Draft((f, a, b), q2.format(a=a, b=b), tuple(lines), each)
    k = rng.randint(2, 6 if f < 1000 else 3)
    lines.append(eq("All", f"{each} × {k}", each * k, small))
    head = story.format(n=name, k=k, a=a, b=b)
    if steps == 3:
        return Draft((f, a, b, k), f"{head} How many {small} is that in all?", tuple(lines), each * k)
    groups = [g for g in range(2, 10) if (each * k) % g == 0 and g != k]
    if not groups:
        return None
    g = rng.choice(groups)
    lines.append(eq("Each", f"{each * k} / {g}", each * k // g, small))
    return Draft((f, a, b, k, g), f"{head} {share.format(n=name, g=g)}", tuple(lines), each * k // g)


FAMILIES: dict[str, Callable[[random.Random, int], Draft | None]] = {
    "distance": distance, "shopping": shopping, "discount": discount, "percent": percent,
    "work": work, "average": average, "convert": convert,
}
