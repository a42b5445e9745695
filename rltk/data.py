"""Training data: rows from a file (JSONL, JSON, CSV, TSV, parquet, arrow), an HF dataset, or generated
arithmetic, turned into chat prompts (and, for SFT, target completions): through ``{column}`` templates or
read from rows in TRL's dataset formats (see :class:`DataConfig`).

Every row keeps where it came from (``file:line``, ``file:row N``, ``hub-id[split][i]``,
``arithmetic[train][i]``), so a row that lacks a field a template or a reward needs is named in the
error, before any training starts.

>>> ds = load_dataset(DataConfig(source="arithmetic", limit=3, system_prompt="Be brief."))
>>> ds.messages(0)[1]["content"] == ds.rows[0]["question"], ds.where[0]
(True, 'arithmetic[train][0]')
>>> ds.completion(0, "{solution}") == ds.rows[0]["solution"]
True
>>> trl = Dataset([{"prompt": [{"role": "user", "content": "2+2?"}], "completion": [{"role": "assistant", "content": "4"}]}],
...               ["rows.jsonl:1"], "rows.jsonl")
>>> trl.messages(0), trl.completion(0)
([{'role': 'user', 'content': '2+2?'}], '4')
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from rltk.core.errors import UserError
from rltk.core.rows import Rows, load_hub_rows, read_rows
from rltk.core.splits import SPLITS, split_by_group
from rltk.core.templates import fill, template_fields
from rltk.sources import SOURCES, generated_rows, is_generated

DEFAULT_PROMPT, DEFAULT_COMPLETION = "{question}", "{solution}"


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section: where the rows come from, and how a row becomes the chat prompt and, for SFT,
    the target reply. ``format`` picks how:

    * ``template``: the user message is ``prompt`` filled from the row (``{column}``; ``{{`` is a brace),
      the SFT target is ``completion`` filled likewise; or ``messages_column`` names a column holding the
      chat messages. A template that is one bare ``{column}`` whose value is a list of {role, content}
      messages takes them as they are (``prompt``: the chat prompt; ``completion``: one assistant message).
      Any other list or mapping in a template is an error (a template fills text).
    * ``trl``: the rows are in one of TRL's dataset formats, standard or conversational: a ``prompt``
      column (a string: the user message; a list of messages: the chat prompt as is), a ``completion``
      column (a string, or a list holding one assistant message: the SFT target), or a ``messages``
      column (a conversation; when it ends with an assistant turn, that turn is the SFT target and the
      turns before it are the prompt). GRPO needs only the prompt.
    * ``auto`` (default): each side is read TRL's way when it is at its default here (``prompt``
      ``"{question}"`` with no ``messages_column``; ``completion`` ``"{solution}"``), the first row lacks
      the default's column and has the TRL column (``prompt`` or ``messages``; ``completion`` or a
      conversation); otherwise as ``template``.

    ``system_prompt`` is put first unless the prompt already starts with a system turn. YAML reads an
    unquoted ``{q}`` (e.g. ``data.prompt={q}`` on the command line) as a mapping: such a one-key mapping is
    read back as the template ``"{q}"``.
    """

    source: str = "arithmetic"  # a registered source (SOURCES: "arithmetic", "NAME:ARG" for a family), a .jsonl/.json/.csv/.tsv/.parquet/.arrow file or save_to_disk folder, or "hf:ORG/NAME"
    split: str = "train"  # generated sources and hub datasets: which split; with split_by: train or test
    hf_config: str | None = None  # hub dataset configuration name
    limit: int | None = None  # use the first N rows (arithmetic: generate N problems; default 5000)
    system_prompt: str | None = None
    format: Literal["auto", "template", "trl"] = "auto"  # how rows become prompts and targets (see above)
    prompt: str | dict[str, Any] = DEFAULT_PROMPT  # user message: a template over row fields
    messages_column: str | None = None  # or: a column holding the chat messages themselves
    completion: str | dict[str, Any] = DEFAULT_COMPLETION  # SFT target: a template over row fields
    # generated arithmetic (evals.arithmetic): the train split never overlaps the held-out test split
    ops: str = "+-*"
    digits: int = 2
    mul_digits: int | None = None
    data_seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # a generated source's own options (e.g. steps)
    # files and hub datasets: split by group, never by row (rltk.core.splits): the rows' groups (e.g. [urls, doc]:
    # one document) go whole to train or test by a hash of their key; `split` then picks the side
    split_by: list[str] | None = None
    test_fraction: float = 0.2
    max_words: dict[str, int] = field(default_factory=dict)  # leave out rows whose column has more words, e.g. {original_text: 200}

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        if not isinstance(self.max_words, dict) or not all(isinstance(n, int) and n >= 1 for n in self.max_words.values()):
            raise ValueError(f"max_words must map columns to word counts >= 1, got {self.max_words!r}")
        if isinstance(self.split_by, str):
            object.__setattr__(self, "split_by", [c.strip() for c in self.split_by.split(",") if c.strip()])
        if self.split_by is not None and (not self.split_by or self.split not in SPLITS or not 0 < self.test_fraction < 1):
            raise ValueError(f"split_by {self.split_by} needs one or more columns, split train or test (got "
                             f"{self.split!r}) and 0 < test_fraction < 1 (got {self.test_fraction})")
        for name in ("prompt", "completion"):
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, value := _template_from_yaml(value, f"data.{name}"))
            template_fields(value, f"data.{name}")
        if self.format == "trl" and (self.prompt, self.completion) != (DEFAULT_PROMPT, DEFAULT_COMPLETION):
            raise ValueError("format 'trl' reads the rows' prompt, completion or messages columns: drop "
                             "data.prompt and data.completion, or set data.format: template")

    def prompt_record(self) -> dict[str, Any]:
        """The prompt settings saved beside an adapter (``rltk.policy.save_adapter``), so an eval asks the way
        training did."""
        return {"system_prompt": self.system_prompt, "prompt": self.prompt, "messages_column": self.messages_column}


def _template_from_yaml(value: dict[str, Any], where: str) -> str:
    """``{q}`` unquoted in YAML is the mapping ``{"q": None}``: read it back as the template ``"{q}"``."""
    if len(value) == 1:
        [(key, v)] = value.items()
        if v is None and isinstance(key, str) and key.isidentifier():
            return "{" + key + "}"
    raise ValueError(f"{where}: YAML read an unquoted {{...}} as the mapping {value!r}; quote the template "
                     f"(in a file: \"{{q}} ...\"; on the command line: {where}='\"{{q}} ...\"')")


@dataclass(frozen=True)
class Layout:
    """How rows become prompts and targets: :class:`DataConfig` resolved against the first row."""

    prompt: str = DEFAULT_PROMPT  # the user message's template
    messages: str | None = None  # or: the column holding the conversation
    completion: str | None = DEFAULT_COMPLETION  # the target's template; None: the conversation's final assistant turn


def resolve_layout(cfg: DataConfig, row: dict[str, Any]) -> Layout:
    """The :class:`Layout` for ``cfg.format`` (see :class:`DataConfig`), given the first row.

    >>> resolve_layout(DataConfig(), {"messages": []})
    Layout(prompt='{question}', messages='messages', completion=None)
    >>> resolve_layout(DataConfig(), {"question": "q", "completion": "c"})
    Layout(prompt='{question}', messages=None, completion='{completion}')
    """
    if cfg.format == "template":
        return Layout(cfg.prompt, cfg.messages_column, cfg.completion)
    trl, has = cfg.format == "trl", lambda *cols: any(c in row for c in cols)
    if "text" in row and not has("prompt", "messages", "question") and (cfg.prompt, cfg.messages_column) == (DEFAULT_PROMPT, None):
        raise UserError("data: the rows have a 'text' column (TRL's language-modeling format), which holds no "
                        "prompt: give 'prompt' and 'completion' columns, or 'messages'")
    if trl and cfg.messages_column is None and not has("prompt", "messages"):
        raise UserError(f"data: format 'trl' needs a 'prompt' or 'messages' column; the first row has "
                        f"{', '.join(map(repr, row)) or 'no columns'}")
    prompt, messages, completion = cfg.prompt, cfg.messages_column, cfg.completion
    if messages is None and (trl or (cfg.prompt == DEFAULT_PROMPT and not has("question"))):
        if "prompt" in row:
            prompt = "{prompt}"
        elif "messages" in row:
            messages = "messages"
    if trl or (cfg.completion == DEFAULT_COMPLETION and not has("solution")):
        if "completion" in row or (trl and messages is None):
            completion = "{completion}"
        elif messages is not None:
            completion = None
    return Layout(prompt, messages, completion)


@dataclass
class Dataset(Rows):
    """Training rows (``where`` per row: file:line, file:row N, hub-id[split][i] or arithmetic[train][i]) and
    the ``data:`` section that turns them into chat prompts and SFT targets (resolved as ``layout``)."""

    cfg: DataConfig = field(default_factory=DataConfig)
    layout: Layout | None = None  # default: resolve_layout(cfg, the first row)

    def __post_init__(self) -> None:
        if self.layout is None:
            self.layout = resolve_layout(self.cfg, self.rows[0] if self.rows else {})

    def messages(self, i: int) -> list[dict[str, Any]]:
        """The chat prompt of row ``i``: the system prompt (if any), then the user message (or the row's messages)."""
        row, where, lay = self.rows[i], self.where[i], self.layout
        if lay.messages is not None:
            conv = chat_messages(row.get(lay.messages), where, lay.messages)
            out = conv[:-1] if conv and conv[-1]["role"] == "assistant" else conv
            if not out:
                raise UserError(f"{where}: column '{lay.messages}' has no prompt turns "
                                f"({'it is empty' if not conv else 'only the assistant turn'})")
        else:
            name = bare_field(lay.prompt)
            if name is not None and isinstance(row.get(name), (list, dict)):
                out = chat_messages(row[name], where, name)
                if not out:
                    raise UserError(f"{where}: column '{name}' is an empty list of messages")
            else:
                out = [{"role": "user", "content": fill_text(lay.prompt, row, where)}]
        if self.cfg.system_prompt and not (out and out[0]["role"] == "system"):
            out.insert(0, {"role": "system", "content": self.cfg.system_prompt})
        return out

    def completion(self, i: int, template: str | None = None) -> str:
        """The SFT target of row ``i`` (``template`` instead of the layout's, if given)."""
        row, where = self.rows[i], self.where[i]
        template = template if template is not None else self.layout.completion
        if template is None:
            col = self.layout.messages
            conv = chat_messages(row.get(col), where, col)
            if not conv or conv[-1]["role"] != "assistant":
                raise UserError(f"{where}: column '{col}' does not end with an assistant turn (the SFT target)")
            return _text_content(conv[-1], where, col)
        name = bare_field(template)
        if name is not None and isinstance(row.get(name), (list, dict)):
            msgs = chat_messages(row[name], where, name)
            if [m["role"] for m in msgs] != ["assistant"]:
                raise UserError(f"{where}: column '{name}' must hold one assistant message, got roles "
                                f"{[m['role'] for m in msgs]}")
            return _text_content(msgs[0], where, name)
        return fill_text(template, row, where)

    def completion_source(self) -> str:
        """Where the SFT target comes from, for error messages."""
        t = self.layout.completion
        if t is None:
            return f"the final assistant turn of column '{self.layout.messages}'"
        return f"template {t!r}" if t == self.cfg.completion else f"column '{bare_field(t)}'"

    def check_for_prompts(self) -> None:
        """Every row yields a chat prompt; else a UserError naming the first bad row."""
        lay = self.layout
        if lay.messages is not None:
            self.require([lay.messages], "data.messages_column" if self.cfg.messages_column else "TRL's messages format")
        elif lay.prompt != self.cfg.prompt:
            self.require(template_fields(lay.prompt, "data.prompt"), "TRL's prompt format")
        else:
            self.require(template_fields(lay.prompt, "data.prompt"), f"the prompt template {lay.prompt!r} uses it")
        for i in range(len(self)):
            self.messages(i)

    def check_rewards(self, reward_set: Any) -> None:
        """Every row must have every column the rewards need (``RewardSet.check_columns``), named by row."""
        need = sorted(set(reward_set.required_columns()) - {"prompts", "prompt", "completion_ids"})
        for row, where in zip(self.rows, self.where):
            present = [k for k, v in row.items() if v is not None]
            if any(c not in present for c in need):
                reward_set.check_columns([*present, "prompts", "completion_ids"], where)


def bare_field(template: str) -> str | None:
    """The column of a template that is one bare ``{column}``, else None."""
    inner = template[1:-1]
    return inner if template.startswith("{") and template.endswith("}") and inner.isidentifier() else None


def fill_text(template: str, row: dict[str, Any], where: str) -> str:
    """``fill`` for a prompt or target: a list or mapping value is an error, not its Python repr."""
    for name in template_fields(template, "template"):
        if isinstance(row.get(name), (list, dict)):
            raise UserError(f"{where}: column '{name}' holds a {type(row[name]).__name__}, not text "
                            f"(the template {template!r} fills in text)")
    return fill(template, row, where)


def chat_messages(value: Any, where: str, column: str) -> list[dict[str, Any]]:
    """``value`` as chat messages (copies, with the null keys arrow adds to unify message structs dropped);
    a UserError naming row and column unless it is a list of {role, content} messages."""
    if not isinstance(value, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and m.get("content") is not None for m in value):
        raise UserError(f"{where}: column '{column}' must be a list of {{role, content}} messages")
    return [{k: v for k, v in m.items() if v is not None} for m in value]


def _text_content(message: dict[str, Any], where: str, column: str) -> str:
    if not isinstance(message["content"], str):
        raise UserError(f"{where}: column '{column}': the assistant turn's content must be text")
    return message["content"]


def load_dataset(cfg: DataConfig) -> Dataset:
    """Rows for ``cfg`` (see :class:`DataConfig`): a registered source (:data:`SOURCES`), ``hf:ORG/NAME`` or a
    file; UserError naming the file, line or key on bad input."""
    if is_generated(cfg.source):
        if cfg.split_by:
            raise UserError(f"data.split_by: {cfg.source} is a generated source with its own disjoint splits (drop split_by)")
        loaded = generated_rows(cfg)
    elif cfg.source.startswith("hf:"):  # split by group: of the hub dataset's train split
        loaded = load_hub_rows(cfg.source[3:], "train" if cfg.split_by else cfg.split, cfg.hf_config)
    else:
        loaded = read_rows(cfg.source)
    if cfg.split_by and not is_generated(cfg.source):
        loaded = split_by_group(loaded, cfg.split_by, cfg.split, cfg.test_fraction)
    rows, where, source = loaded.rows, loaded.where, loaded.source
    if cfg.max_words:
        keep = [i for i, r in enumerate(rows) if all(len(str(r.get(c) or "").split()) <= n for c, n in cfg.max_words.items())]
        source = f"{source} ({len(rows) - len(keep)} of {len(rows)} rows over max_words left out)"
        rows, where = [rows[i] for i in keep], [where[i] for i in keep]
    if cfg.limit is not None:
        rows, where = rows[:cfg.limit], where[:cfg.limit]
    if not rows:
        raise UserError(f"data: {cfg.source} has no rows")
    return Dataset(list(rows), list(where), source, cfg=cfg)


class PromptStream:
    """An endless, seeded, index-addressable order over ``n`` rows: epoch ``e`` is its own shuffle.

    The run's data cursor is one integer (prompts drawn so far), so a resumed run draws exactly the
    prompts an uninterrupted run would have drawn next.

    >>> s = PromptStream(3, seed=0)
    >>> first = s.draw(3)
    >>> [pos for pos, _ in first], sorted(row for _, row in first), s.cursor   # an epoch visits every row once
    ([0, 1, 2], [0, 1, 2], 3)
    >>> PromptStream(3, seed=0, cursor=3).draw(2) == s.draw(2)
    True
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, cursor: int = 0):
        if n < 1:
            raise ValueError("no rows to draw prompts from")
        self.n, self.seed, self.shuffle, self.cursor = n, seed, shuffle, cursor
        self._perms: dict[int, list[int]] = {}

    def row_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if not self.shuffle:
            return offset
        perm = self._perms.get(epoch)
        if perm is None:
            perm = list(range(self.n))
            random.Random(f"prompt-stream-{self.seed}-{epoch}").shuffle(perm)
            self._perms = {epoch: perm}  # one epoch cached at a time
        return perm[offset]

    def draw(self, k: int) -> list[tuple[int, int]]:
        """(stream position, row index) of the next ``k`` prompts; advances the cursor."""
        out = [(p, self.row_at(p)) for p in range(self.cursor, self.cursor + k)]
        self.cursor += k
        return out


__all__ = ["SOURCES", "DataConfig", "Dataset", "Layout", "PromptStream", "load_dataset", "resolve_layout"]
