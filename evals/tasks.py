"""Eval tasks: a rows source + a prompt builder + a scorer (a :class:`rewards.RewardSet`, so an
eval judges answers exactly as training rewards them).

Built-ins (``TASKS``): ``arithmetic``, ``gsm8k``, ``math500``, ``legal_summary``, ``unfair_tos``.
A user task is a YAML file (data path, prompt template, rewards) — see :func:`load_user_task`.
Each registry entry is a factory taking the task's own options (``--task-arg key=value``).

>>> task = get_task("arithmetic")
>>> rows = task.load(None)
>>> rows.rows[0]["question"], task.gold(rows.rows[0])
('What is 21 + 20?', '41')
>>> task.messages(rows.rows[0])[-1]["content"]
'What is 21 + 20?'
>>> get_task("gsm9k")
Traceback (most recent call last):
...
rltk.core.errors.UserError: unknown eval task 'gsm9k' (did you mean gsm8k?; or give module:attr / file.py:attr)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from evals.arithmetic import TEST_BUCKETS, make_problems, split_of, worked_solution
from rltk.core.rows import Rows, load_hub_rows, read_rows
from evals.scorers import parse_label
from rltk.core.config import load_config
from rltk.core.errors import UserError
from rltk.core.registry import Registry
from rltk.core.templates import fill, template_fields


def _math_extract(text: str) -> str | None:
    from rewards.math import extract_answer

    return extract_answer(text)


def _math_gold(row: dict[str, Any], column: str = "answer") -> str:
    from rewards.math import gold_answer

    return gold_answer(row.get(column)) or ""


@dataclass(frozen=True)
class Task:
    """Everything an eval needs to know about one task (frozen: build variants with ``dataclasses.replace``)."""

    name: str
    description: str
    load: Callable[[str | None], Rows]  # data path (None: the built-in source) -> rows
    fields: tuple[str, ...]  # columns every row must have
    user: Callable[[dict[str, Any]], str]  # row -> user message
    rewards: tuple[Any, ...]  # RewardSpec list: the scorer
    correct: str | None  # label of the 0/1 component that decides correctness; None: graded task (weighted mean of components)
    format: str | None  # label of the component (>= 1.0 means compliant) that decides format compliance
    extract: Callable[[str], str | None]  # completion -> the answer shown in records and voted on for maj@k
    gold: Callable[[dict[str, Any]], str]  # row -> the gold answer shown in records
    item_id: Callable[[dict[str, Any], int], str]  # (row, position in source) -> stable item id
    system: str | None = None
    labels: tuple[str, ...] = ()  # classification tasks: per-class accuracy and macro-F1 over these
    demo: Callable[[dict[str, Any]], str] | None = None  # row -> assistant turn of a few-shot demo
    demo_source: Callable[[str | None], Rows | None] | None = None  # where demos come from by default (None: the rows not evaluated)
    max_new_tokens: int = 256
    combine: str = "mean"  # graded tasks: item score = weighted "mean" or "product" of the components
    options: dict[str, Any] = field(default_factory=dict)  # the factory options that built it (recorded in results)

    def __post_init__(self) -> None:
        if self.combine not in ("mean", "product"):
            raise ValueError(f"combine must be 'mean' or 'product', got {self.combine!r}")

    def graded_score(self, components: dict[str, float | None]) -> float:
        """A graded task's sample score from its component scores (None components skipped):
        the weighted mean, or the product (every component must be good: a summary needs the
        precise terms *and* a summary's shape)."""
        weights = {s.key: float(s.weight) for s in self.rewards}
        vals = [(weights.get(k, 1.0), v) for k, v in components.items() if v is not None]
        if not vals:
            return 0.0
        if self.combine == "product":
            out = 1.0
            for _, v in vals:
                out *= v
            return out
        den = sum(abs(w) for w, _ in vals)
        return sum(w * v for w, v in vals) / den if den else 0.0

    @property
    def graded(self) -> bool:
        """True when item scores are continuous (no single correct/incorrect component)."""
        return self.correct is None

    def messages(self, row: dict[str, Any], demos: Sequence[dict[str, Any]] = ()) -> list[dict[str, str]]:
        """The chat prompt: system (if any), few-shot demo turns, then the item."""
        msgs: list[dict[str, str]] = []
        if self.system:
            msgs.append({"role": "system", "content": self.system})
        for d in demos:
            if self.demo is None:
                raise UserError(f"task {self.name} has no demo answers, so it cannot be run few-shot")
            msgs.append({"role": "user", "content": self.user(d)})
            msgs.append({"role": "assistant", "content": self.demo(d)})
        msgs.append({"role": "user", "content": self.user(row)})
        return msgs

    def reward_set(self, timeout_s: float = 5.0, processes: int = 0) -> Any:
        from rewards import RewardSet

        return RewardSet(list(self.rewards), timeout_s=timeout_s, processes=processes)

    def check_rows(self, rows: Rows) -> None:
        """UserError naming file and line of the first row lacking a field the task or its rewards need."""
        need = list(dict.fromkeys([*self.fields, *sorted(self.reward_set().required_columns() - {"prompts", "prompt"})]))
        rows.require(need, f"task {self.name} needs {', '.join(need)}")


def item_hash(row: dict[str, Any]) -> str:
    """A fingerprint of the row's content: comparisons refuse runs whose items differ."""
    blob = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


TASKS: Registry = Registry("eval task")


def get_task(name: str, **options: Any) -> Task:
    """A built-in task by name (configured with ``options``), a user task YAML file, or ``module:attr``."""
    if name.endswith((".yaml", ".yml")):
        if options:
            raise UserError(f"task file {name}: --task-arg applies to built-in tasks only (edit the YAML instead)")
        return load_user_task(name)
    factory = TASKS.get(name)
    try:
        task = factory(**options) if callable(factory) and not isinstance(factory, Task) else factory
    except TypeError as e:
        raise UserError(f"eval task {name!r}: bad option ({e})") from e
    if not isinstance(task, Task):
        raise UserError(f"eval task {name!r} did not give a Task (got {type(task).__name__})")
    return task


# ----------------------------------------------------------------------------- math tasks

ARITHMETIC_SYSTEM = "Answer with the result only, in the form '#### <answer>'."
HASH_SYSTEM = "Solve the problem step by step. Then give the final answer on its own last line in the form '#### <answer>'."
BOXED_SYSTEM = "Solve the problem step by step. Put the final answer in \\boxed{}."


def _rows_id(column: str | None, prefix: str) -> Callable[[dict[str, Any], int], str]:
    def item_id(row: dict[str, Any], i: int) -> str:
        if column and row.get(column) not in (None, ""):
            return str(row[column])
        return f"{prefix}-{i:05d}"

    return item_id


def _math_rewards(style: str) -> tuple[Any, ...]:
    from rewards import RewardSpec

    return (
        RewardSpec("math_answer", params={"gold_column": "answer"}, label="correct"),
        RewardSpec("format_answer", params={"style": style}, label="format"),
    )


@TASKS.register("arithmetic")
def arithmetic_task(n: int | None = None, data_seed: int = 0, ops: str = "+-*", digits: int = 2, mul_digits: int | None = None) -> Task:
    """Held-out arithmetic problems from :mod:`evals.arithmetic` (the ``test`` split, disjoint from
    ``train`` by construction and asserted on load): ``n`` of them (default: 1000, or fewer when the
    operand sizes allow fewer). The first ``m`` problems do not depend on ``n``, so ``--limit m``
    always sees the same items. ``--data FILE`` evaluates the user's own rows instead."""

    def load(data: str | None) -> Rows:
        if data is not None:
            return read_rows(data)
        count = n
        if count is None:
            md = digits if mul_digits is None else mul_digits
            capacity = sum((10 ** (md if op == "*" else digits)) ** 2 for op in set(ops) if op in "+-*")
            count = max(1, min(1000, capacity // (TEST_BUCKETS + 1)))
        try:
            rows = make_problems("test", count, seed=data_seed, ops=ops, digits=digits, mul_digits=mul_digits)
        except ValueError as e:
            raise UserError(f"arithmetic task: {e}") from e
        leaked = [r["id"] for r in rows if split_of(r["a"], r["op"], r["b"]) != "test"]
        assert not leaked, f"training problems in the held-out split: {leaked[:3]}"
        return Rows(rows, [f"arithmetic[test][{i}]" for i in range(len(rows))], f"arithmetic:test:seed={data_seed}")

    def demos(data: str | None) -> Rows:
        rows = make_problems("train", 64, seed=data_seed, ops=ops, digits=digits, mul_digits=mul_digits)
        return Rows(rows, [f"arithmetic[train][{i}]" for i in range(len(rows))], "arithmetic:train")

    return Task(
        name="arithmetic",
        description="a op b with + - x (held-out split), answer as '#### n'",
        load=load,
        fields=("question", "answer"),
        system=ARITHMETIC_SYSTEM,
        user=lambda r: str(r["question"]),
        rewards=_math_rewards("####"),
        correct="correct",
        format="format",
        extract=_math_extract,
        gold=_math_gold,
        item_id=_rows_id("id", "arith"),
        demo=lambda r: worked_solution(r) if {"a", "op", "b"} <= set(r) else f"#### {r['answer']}",
        demo_source=demos,
        max_new_tokens=64,
        options={"n": n, "data_seed": data_seed, "ops": ops, "digits": digits, "mul_digits": mul_digits},
    )


def _file_or_hub(task: str, hub_id: str, config: str | None, split: str) -> Callable[[str | None], Rows]:
    def load(data: str | None) -> Rows:
        return read_rows(data) if data is not None else load_hub_rows(hub_id, split, config)

    return load


def _sibling_train(hub_id: str, config: str | None) -> Callable[[str | None], Rows | None]:
    """Few-shot demos from ``train.jsonl`` beside the ``--data`` file, or the hub's train split;
    None (use the rows not being evaluated) when the local file has no such sibling."""

    def load(data: str | None) -> Rows | None:
        if data is None:
            return load_hub_rows(hub_id, "train", config)
        train = Path(data).expanduser().parent / "train.jsonl"
        if not train.is_file() or train.resolve() == Path(data).expanduser().resolve():
            return None
        return read_rows(train)

    return load


@TASKS.register("gsm8k")
def gsm8k_task(hub_id: str = "openai/gsm8k", split: str = "test") -> Task:
    """GSM8K grade-school word problems (Cobbe et al. 2021): hub ``openai/gsm8k`` or ``--data test.jsonl``."""
    return Task(
        name="gsm8k",
        description="grade-school math word problems, answer as '#### n'",
        load=_file_or_hub("gsm8k", hub_id, "main", split),
        fields=("question", "answer"),
        system=HASH_SYSTEM,
        user=lambda r: str(r["question"]),
        rewards=_math_rewards("####"),
        correct="correct",
        format="format",
        extract=_math_extract,
        gold=_math_gold,
        item_id=_rows_id(None, "gsm8k"),
        demo=lambda r: _gsm8k_demo(str(r["answer"])),
        demo_source=_sibling_train(hub_id, "main"),
        max_new_tokens=256,
        options={"hub_id": hub_id, "split": split},
    )


def _gsm8k_demo(answer: str) -> str:
    """A GSM8K worked solution without its calculator notes ``<<48/2=24>>``."""
    out, i = [], 0
    while i < len(answer):
        j = answer.find("<<", i)
        if j < 0:
            out.append(answer[i:])
            break
        k = answer.find(">>", j)
        if k < 0:
            out.append(answer[i:])
            break
        out.append(answer[i:j])
        i = k + 2
    return "".join(out)


@TASKS.register("math500")
def math500_task(hub_id: str = "HuggingFaceH4/MATH-500", split: str = "test") -> Task:
    """MATH-500 (Lightman et al. 2023's subset of Hendrycks MATH): hub ``HuggingFaceH4/MATH-500`` or ``--data``."""
    return Task(
        name="math500",
        description="competition math (MATH-500), answer in \\boxed{}",
        load=_file_or_hub("math500", hub_id, None, split),
        fields=("problem", "answer"),
        system=BOXED_SYSTEM,
        user=lambda r: str(r["problem"]),
        rewards=_math_rewards("boxed"),
        correct="correct",
        format="format",
        extract=_math_extract,
        gold=_math_gold,
        item_id=_rows_id("unique_id", "math500"),
        demo=lambda r: str(r["solution"]) if r.get("solution") else f"\\boxed{{{r['answer']}}}",
        demo_source=None,
        max_new_tokens=512,
        options={"hub_id": hub_id, "split": split},
    )


# ----------------------------------------------------------------------------- legal tasks

UNFAIR_TOS_LABELS: dict[str, str] = {
    "Arbitration": "disputes must go to arbitration instead of a court",
    "Unilateral change": "the provider may change the terms or the service on its own",
    "Content removal": "the provider may remove the user's content",
    "Jurisdiction": "disputes must be brought before the courts of a given place",
    "Choice of law": "a given country's or state's law governs the contract",
    "Limitation of liability": "the provider limits or excludes its liability",
    "Unilateral termination": "the provider may suspend or terminate the account or service on its own",
    "Contract by using": "the user is bound by the terms merely by using the service",
    "Other": "none of the above",
}

UNFAIR_TOS_SYSTEM = (
    "Classify the terms-of-service clause into exactly one category. Categories:\n"
    + "\n".join(f"- {k}: {v}" for k, v in UNFAIR_TOS_LABELS.items())
    + "\nAnswer with the category name only."
)


@TASKS.register("unfair_tos")
def unfair_tos_task(strict: bool = False) -> Task:
    """LegalBench ``unfair_tos`` (CLAUDETTE clauses, 9 labels): ``--data .../legalbench_unfair_tos/test.tsv``.
    Exact-label scoring (``strict``: only an answer that is exactly a label counts), per-class
    accuracy and macro-F1. About 90% of rows are ``Other``: use ``--shuffle`` with ``--limit``."""
    labels = tuple(UNFAIR_TOS_LABELS)
    from rewards import RewardSpec

    def load(data: str | None) -> Rows:
        if data is None:
            raise UserError("task unfair_tos needs --data PATH (LegalBench unfair_tos test.tsv; no hub copy is loaded)")
        return read_rows(data)

    return Task(
        name="unfair_tos",
        description="ToS clause -> 1 of 9 unfair-clause categories (LegalBench)",
        load=load,
        fields=("text", "label"),
        system=UNFAIR_TOS_SYSTEM,
        user=lambda r: f"Clause: {str(r['text']).strip()}",
        rewards=(
            RewardSpec("evals.scorers:LabelMatch", params={"labels": list(labels), "strict": strict}, label="correct"),
            RewardSpec("evals.scorers:LabelValid", params={"labels": list(labels)}, label="format"),
        ),
        correct="correct",
        format="format",
        extract=lambda text: parse_label(text, labels),
        gold=lambda r: str(r["label"]).strip(),
        item_id=_rows_id(None, "unfair_tos"),
        labels=labels,
        demo=lambda r: str(r["label"]).strip(),
        demo_source=None,
        max_new_tokens=16,
        options={"strict": strict},
    )


LEGAL_SUMMARY_SYSTEM = (
    "Summarize the passage from a contract or terms of service in plain English, in one or two sentences. "
    "Keep the precise legal terms the passage uses (for example 'indemnify', 'arbitration', 'liable')."
)


@TASKS.register("legal_summary")
def legal_summary_task(max_words: int = 60, max_ratio: float = 0.6, all_rows: bool = False) -> Task:
    """Plain-English summaries of contract / ToS passages (Manor & Li 2019,
    ``--data .../plain_english_contracts/all_v1.json``), scored by ``legal_terms`` (precise terms of
    the source kept, lay variants penalised) and :class:`evals.scorers.SummaryShape` (at most
    ``max_words`` words and ``max_ratio`` of the passage, plain prose). A graded task: the item
    score is the product of the two, in [0, 1], so neither copying the passage (all terms, no
    summary) nor a short non-answer (summary-shaped, no terms) scores. Passages holding no
    glossary term are left out (337 of the 446 remain) unless ``all_rows``."""
    from rewards import RewardSpec, get_reward

    def load(data: str | None) -> Rows:
        if data is None:
            raise UserError("task legal_summary needs --data PATH (plain_english_contracts all_v1.json)")
        rows = read_rows(data)
        if not all_rows:  # keep the passages that hold a glossary term: legal_terms has nothing to judge in the others
            terms = get_reward("legal_terms", **_legal_terms_params())
            keep = [i for i, r in enumerate(rows.rows) if "original_text" not in r or terms.required_terms(r)]
            rows = rows.select(keep)
        return rows

    return Task(
        name="legal_summary",
        description="contract passage -> plain-English summary, legal_terms + length/structure",
        load=load,
        fields=("original_text", "reference_summary"),
        system=LEGAL_SUMMARY_SYSTEM,
        user=lambda r: f"Passage:\n{str(r['original_text']).strip()}",
        rewards=(
            RewardSpec("legal_terms", params=_legal_terms_params(), label="legal_terms"),
            RewardSpec("evals.scorers:SummaryShape", params={"max_words": max_words, "max_ratio": max_ratio}, label="shape"),
        ),
        combine="product",
        correct=None,
        format="shape",
        extract=lambda text: None,
        gold=lambda r: str(r["reference_summary"]),
        item_id=_rows_id("uid", "legal"),
        demo=lambda r: str(r["reference_summary"]),
        demo_source=None,
        max_new_tokens=128,
        options={"max_words": max_words, "max_ratio": max_ratio, "all_rows": all_rows},
    )


def _legal_terms_params() -> dict[str, Any]:
    return {"source_column": "original_text"}


# ----------------------------------------------------------------------------- user tasks (YAML)


@dataclass(frozen=True)
class RewardEntry:
    name: str
    weight: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    gate: str | None = None
    gate_threshold: float = 1.0
    label: str | None = None


@dataclass(frozen=True)
class UserTaskConfig:
    """A task in YAML, no Python needed. ``{column}`` placeholders in the templates are filled from each row.

    Example (``my_task.yaml``)::

        name: my_arith
        data: rows.jsonl                   # relative to this file; --data overrides
        system: "Answer with '#### <n>'."
        prompt: "Compute {question}"
        rewards:
          - {name: math_answer, label: correct}
          - {name: format_answer, params: {style: "####"}, label: format}
        correct: correct                   # omit for a graded task (weighted mean of the components)
        format: format
    """

    name: str
    prompt: str
    rewards: list[RewardEntry]
    data: str | None = None
    system: str | None = None
    correct: str | None = None
    format: str | None = None
    gold: str | None = None  # template for the gold shown in records, e.g. "{answer}"
    demo: str | None = None  # template for few-shot assistant turns
    id_column: str | None = None
    labels: list[str] = field(default_factory=list)
    extract: str = "math"  # math | label | none: how the answer shown in records is read
    combine: str = "mean"  # graded tasks (no 'correct'): weighted mean or product of the components
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.extract not in ("math", "label", "none"):
            raise ValueError(f"extract must be math, label or none, got {self.extract!r}")
        if self.extract == "label" and not self.labels:
            raise ValueError("extract: label needs a 'labels' list")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.combine not in ("mean", "product"):
            raise ValueError(f"combine must be mean or product, got {self.combine!r}")


def load_user_task(path: str | Path) -> Task:
    """A :class:`Task` from a YAML file (see :class:`UserTaskConfig`); errors name the file and key."""
    from rewards import RewardSpec

    cfg = load_config(UserTaskConfig, path)
    where = str(path)
    needed = template_fields(cfg.prompt, f"{where}: prompt")
    for key in ("system", "gold", "demo"):
        tpl = getattr(cfg, key)
        if tpl is not None:
            fields_ = template_fields(tpl, f"{where}: {key}")
            if key != "system":
                needed += fields_
            elif fields_:
                raise UserError(f"{where}: system prompt cannot use row fields ({', '.join(fields_)})")
    if not cfg.rewards:
        raise UserError(f"{where}: 'rewards' needs at least one reward")
    specs = tuple(RewardSpec(e.name, e.weight, dict(e.params), e.gate, e.gate_threshold, e.label) for e in cfg.rewards)
    labels = [s.key for s in specs]
    for key in ("correct", "format"):
        val = getattr(cfg, key)
        if val is not None and val not in labels:
            raise UserError(f"{where}: '{key}: {val}' is not the label of one of its rewards ({', '.join(labels)})")
    base = Path(path).expanduser().resolve().parent
    default_data = None if cfg.data is None else str((base / cfg.data) if not Path(cfg.data).expanduser().is_absolute() else Path(cfg.data).expanduser())

    def load(data: str | None) -> Rows:
        target = data if data is not None else default_data
        if target is None:
            raise UserError(f"{where}: no 'data' in the task file and no --data given")
        return read_rows(target)

    if cfg.extract == "math":
        extract: Callable[[str], str | None] = _math_extract
    elif cfg.extract == "label":
        lab = tuple(cfg.labels)
        extract = lambda text: parse_label(text, lab)  # noqa: E731
    else:
        extract = lambda text: None  # noqa: E731
    gold_tpl = cfg.gold
    return Task(
        name=cfg.name,
        description=f"user task from {Path(path).name}",
        load=load,
        fields=tuple(dict.fromkeys(needed)),
        system=cfg.system,
        user=lambda r: fill(cfg.prompt, r, none_as_empty=True),
        rewards=specs,
        correct=cfg.correct,
        format=cfg.format,
        extract=extract,
        gold=(lambda r: fill(gold_tpl, r, none_as_empty=True)) if gold_tpl else (lambda r: _math_gold(r) if "answer" in r else ""),
        item_id=_rows_id(cfg.id_column, cfg.name),
        labels=tuple(cfg.labels),
        demo=(lambda r: fill(cfg.demo, r, none_as_empty=True)) if cfg.demo else None,
        demo_source=None,
        max_new_tokens=cfg.max_new_tokens,
        combine=cfg.combine,
        options={"file": str(path)},
    )


def task_names() -> list[str]:
    return TASKS.names()

