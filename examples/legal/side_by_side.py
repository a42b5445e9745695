"""Held-out passages side by side: source, human summary, and what the base, SFT and GRPO models wrote (greedy),
from the evals a legal run saved (``RUN_DIR/evals/{base,sft,grpo}_greedy.json``), with each one's item score and legal_terms score.

    python examples/legal/side_by_side.py runs/grpo-20260101-120000            # 3 items, chosen by seed 0
    python examples/legal/side_by_side.py runs/grpo-20260101-120000 --n 5 --markdown out.md
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from evals.result import load_result

STAGES = ("base", "sft", "grpo")


def _passage(prompt: str) -> str:
    """The passage out of the chat prompt the eval asked (after 'Passage:', up to the end of the user turn)."""
    text = prompt.split("Passage:", 1)[-1]
    return text.split("<|im_end|>", 1)[0].strip()


def _scores(sample: dict) -> str:
    """The item score (legal_terms x summary shape, what the eval averages) and legal_terms alone."""
    terms, score = (sample.get("scores") or {}).get("legal_terms"), sample.get("score")
    return f"score {'–' if score is None else f'{score:.2f}'}, legal_terms {'–' if terms is None else f'{terms:.2f}'}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", metavar="FILE", help="also write the examples as Markdown")
    args = ap.parse_args()
    paths = {s: Path(args.run_dir) / "evals" / f"{s}_greedy.json" for s in STAGES}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        print(f"side_by_side: missing {', '.join(missing)} (a finished legal run has all three)", file=sys.stderr)
        return 2
    results = {s: {r["id"]: r for r in load_result(p).records} for s, p in paths.items()}
    ids = [i for i in results["base"] if all(i in results[s] for s in STAGES)]
    picked = random.Random(args.seed).sample(ids, min(args.n, len(ids)))
    lines: list[str] = []
    for k, item in enumerate(picked, 1):
        rec = results["base"][item]
        lines += [f"### Example {k} ({rec.get('where', item)})", "", f"**Source.** {_passage(rec['prompt'])}", "",
                  f"**Human summary.** {rec['gold']}", ""]
        for s in STAGES:
            sample = results[s][item]["samples"][0]
            lines += [f"**{s.upper() if s != 'base' else 'Base'}** ({_scores(sample)}). "
                      f"{sample['completion'].strip()}", ""]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
