import re

from rewards import reward


@reward
def hashes_answer(completion, answer, **row):
    """1.0 if the completion ends with '#### <the row's answer>', else 0.0."""
    m = re.search(r"####\s*(-?[\d,.]+)\s*$", completion)
    gold = str(answer).split("####")[-1].strip()
    return float(m is not None and m.group(1).replace(",", "") == gold.replace(",", ""))
