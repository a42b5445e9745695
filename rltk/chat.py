"""``rltk chat MODEL [--adapter A]``: talk to a model in the terminal, the answer streamed token by token.

``MODEL`` is anything rltk loads (an alias such as ``smollm2-135m``, an HF folder such as one ``rltk export``
wrote, a hub id, a ``.gguf`` file), or a run folder / peft adapter folder, whose adapter is then loaded on the
base it names. The conversation goes through the model's own chat template; ``--system`` sets the system
message. Commands at the prompt: ``/reset`` forgets the conversation (the system message stays), ``/exit``
leaves; EOF (Ctrl-D) leaves with exit code 0; Ctrl-C during an answer stops that answer only.
``--prompt "..."`` answers once and exits, for scripts.

Decoding is greedy unless ``--temperature`` is above 0 (then sampled, ``--top-p``). Older turns are dropped
when the conversation no longer fits the model's context.

From Python::

    from rltk.chat import ChatSession, load_chat_model
    session = ChatSession(load_chat_model("smollm2-135m"), system="Be brief.")
    reply = session.ask("What is 12 + 30?")   # also streamed to stdout unless stream=None
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
from transformers import TextStreamer

from rltk.core.errors import UserError
from rltk.policy import adapter_base, load_policy, spec_for_base
from rltk.policy.base import Policy

RESET, EXIT = "/reset", ("/exit", "/quit")


def _adapter_folder(path: Path) -> Path | None:
    """A run folder's adapter (``RUN/adapter``) or a peft adapter folder itself; None for anything else."""
    for folder in (path / "adapter", path):
        if (folder / "adapter_config.json").is_file():
            return folder
    return None


def load_chat_model(model: str, adapter: str | None = None, quant: str = "none") -> Policy:
    """The policy to chat with: ``model`` loaded for inference, with ``adapter`` (or the adapter ``model`` is)."""
    path = Path(model).expanduser()
    if adapter is None and path.is_dir() and (found := _adapter_folder(path)) is not None:
        adapter, base = str(found), adapter_base(found)
        if base is None:
            raise UserError(f"{found}/adapter_config.json names no base model (base_model_name_or_path)")
        model = spec_for_base(base)
    elif adapter is not None:
        found = _adapter_folder(Path(adapter).expanduser())
        if found is None:
            raise UserError(f"--adapter {adapter}: not a peft adapter folder (no adapter_config.json) nor a run folder")
        adapter = str(found)
    policy = load_policy(model, quant=quant, adapter=adapter, trainable=False)  # type: ignore[arg-type]
    if not getattr(policy.tokenizer, "chat_template", None):
        raise UserError(f"model {model!r} has no chat template in its tokenizer: rltk chat needs one")
    return policy


@dataclass
class ChatSession:
    """One conversation: the messages so far, and how to answer the next one."""

    policy: Policy
    system: str | None = None
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    messages: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def _context(self) -> int:
        cfg = getattr(self.policy.model, "config", None)
        return int(getattr(cfg, "max_position_embeddings", 0) or 2048)

    def _prompt_ids(self) -> torch.Tensor:
        tok = self.policy.tokenizer
        while True:
            ids = tok.apply_chat_template(self.messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)["input_ids"]
            turns = [i for i, m in enumerate(self.messages) if m["role"] != "system"]
            if ids.shape[1] + self.max_new_tokens <= self._context() or len(turns) <= 1:
                return ids
            del self.messages[turns[0]:turns[1] + 1 if len(turns) > 1 else turns[0] + 1]  # the oldest turn

    def ask(self, text: str, stream: TextIO | None = sys.stdout) -> str:
        """Answer ``text`` (streamed to ``stream`` as it is generated) and keep both in the conversation."""
        self.messages.append({"role": "user", "content": text})
        ids = self._prompt_ids().to(self.policy.device)
        tok = self.policy.tokenizer
        streamer = _Streamer(tok, stream) if stream is not None else None
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": tok.pad_token_id,
                                  "attention_mask": torch.ones_like(ids)}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        try:
            with torch.inference_mode():
                out = self.policy.model.generate(ids, streamer=streamer, **kwargs)
            new = out[0, ids.shape[1]:]
            reply = tok.decode(new, skip_special_tokens=True).strip()
        except KeyboardInterrupt:  # this answer stops; the conversation goes on
            reply = (streamer.text if streamer is not None else "").strip()
            if stream is not None:
                stream.write(" [stopped]")
        if stream is not None:
            stream.write("\n")
            stream.flush()
        self.messages.append({"role": "assistant", "content": reply})
        return reply


class _Streamer(TextStreamer):
    """transformers' TextStreamer (word-boundary buffering of decoded text), written to a chosen stream."""

    def __init__(self, tok: Any, stream: TextIO) -> None:
        super().__init__(tok, skip_prompt=True, skip_special_tokens=True)
        self.stream, self.text = stream, ""

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.text += text
        self.stream.write(text.rstrip("\n") if stream_end else text)
        self.stream.flush()


def repl(session: ChatSession, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """The interactive loop: ``you> `` prompts until EOF or /exit; exit code 0."""
    stdout.write("rltk chat: /reset forgets the conversation, /exit or Ctrl-D leaves\n")
    while True:
        stdout.write("you> ")
        stdout.flush()
        line = stdin.readline()
        if not line:  # EOF (Ctrl-D)
            stdout.write("\n")
            return 0
        text = line.strip()
        if not text:
            continue
        if text in EXIT:
            return 0
        if text == RESET:
            session.reset()
            stdout.write("(conversation reset)\n")
            continue
        stdout.write("model> ")
        stdout.flush()
        session.ask(text, stream=stdout)


__all__ = ["ChatSession", "load_chat_model", "repl"]
