"""polarity_flips: a summary that reverses its source's negation on a predicate is caught; paraphrase is not judged."""

from __future__ import annotations

import pytest

from rewards import get_reward
from rewards.polarity import polarity_flips

SRC = ("jetbrains reserves the right at its sole discretion to change any part of these terms at any time. "
       "airbnb does not claim any ownership rights in member content. failure to enforce any right will not "
       "constitute a waiver.")


@pytest.mark.parametrize("summary, flips", [
    ("JetBrains may change these terms at any time.", []),
    ("JetBrains may not change these terms.", ["chang", "terms"]),  # the verb and the content word after it
    ("Airbnb does not claim ownership of member content.", []),
    ("Airbnb does claim ownership of member content.", ["claim", "owner"]),
    ("Airbnb doesn't claim ownership.", []),  # contractions count as negations
    ("If a right is not enforced, that is not a waiver.", []),  # "failure to enforce" negates enforce
    ("If a right is enforced, that is no waiver.", ["enfor"]),
    ("The company may sell your data.", []),  # words the source does not use are not judged
])
def test_flipped_predicates_are_found_and_kept_ones_are_not(summary, flips):
    assert polarity_flips(summary, SRC) == flips


def test_the_legal_summary_reward_divides_by_one_plus_the_flips():
    ls = get_reward("legal_summary")
    src = ("outside the united states the provider reserves the right to terminate the agreement for convenience "
           "at any time with a notice period of 30 days which will be sent to the email address on the account.")
    honest, flipped = "The provider may terminate the agreement for convenience with 30 days' notice.", \
        "The provider may not terminate the agreement for convenience with 30 days' notice."
    (h, f) = ls([honest, flipped], original_text=[src, src])
    assert h > 0.8 and f <= h / 2, (h, f)
    assert ls.detail(flipped, {"original_text": src})["polarity_flips"] == ["termi", "agree"]


def test_hostile_input_stays_cheap():
    import time
    t0 = time.thread_time()  # CPU time: holds on a loaded machine
    polarity_flips("may not " * 50_000, "may " * 200_000)
    assert time.thread_time() - t0 < 1.0
