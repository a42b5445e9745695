"""SFT warm start: LoRA / QLoRA on chat (prompt, completion) pairs, loss on completion tokens only.

* Rows come from :mod:`rltk.data` (JSONL, an HF dataset, or generated arithmetic with
  ``evals.arithmetic.worked_solution`` as the target); the prompt goes through the tokenizer's
  chat template with the generation prompt, the target is the assistant's reply followed by EOS
  (so the model learns to stop, exactly where the GRPO sampler stops).
* The loss is the mean cross-entropy over the batch's completion tokens; prompt tokens are
  masked. It runs through the same :class:`rltk.learner.Learner` as GRPO (AdamW on LoRA,
  warm-up + schedule, clipping, micro-batches with gradient accumulation).
* Batches are built by length: each window of shuffled rows is sorted by length and cut into
  batches (then the batches are shuffled). A micro-batch's common prompt prefix (system prompt, template
  head) runs once and its rows run as one batch on its cache (:func:`rltk.logprobs.prefix_log_probs`;
  left-padded whole rows when gradient checkpointing is on).
* The result is a standard peft adapter folder (``RUN_DIR/adapter``) that
  ``PeftModel.from_pretrained`` loads and that ``rltk grpo`` starts from (``init_adapter``).

From Python::

    from rltk.core.config import load_config
    from rltk.sft import SFTJobConfig, train_sft
    result = train_sft(load_config(SFTJobConfig, "examples/arithmetic/sft.yaml"))
    result.adapter_dir
"""

from __future__ import annotations

import dataclasses
import gc
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from rltk.checkpoint import load_adapter_into
from rltk.core.config import check_range, config_relative, load_config, to_dict
from rltk.data import DataConfig, Dataset, load_dataset
from rltk.core.errors import UserError
from rltk.learner import Learner
from rltk.logprobs import MicroBatch, PrefixRows, collate, completion_log_probs, is_checkpointing, prefix_log_probs, prefix_rows
from rltk.metrics import SFT_COLUMNS, LiveView, MetricsLog
from rltk.policy import ModelConfig, Policy, policy_from_config, save_adapter
from rltk.optim import OptimFields
from rltk.policy.decode import eos_token_ids
from rltk.rollouts.worker import encode_prompt
from rltk.runs import claim_run_dir, claimed_run_dir, release_if_unused, write_config


@dataclass(frozen=True)
class SFTConfig(OptimFields):
    """The ``sft:`` section: the optimiser (:class:`rltk.optim.OptimFields`, SFT's own defaults) and these."""

    lr: float = 2e-4
    warmup_steps: int = 2
    schedule: Literal["constant", "cosine"] = "cosine"
    steps: int = 40  # optimizer steps (the data is cycled through as many epochs as that takes)
    batch_size: int = 16  # sequences per optimizer step
    max_length: int = 1024  # prompt + completion tokens; longer rows are an error naming the row
    length_window: int = 64  # batches per sorting window of the length bucketing
    dense_base: bool = True  # CPU: frozen base weights dense at the compute dtype, 4-bit dequantized once (see rltk.policy.memory.dense_frozen_base)

    def __post_init__(self) -> None:
        OptimFields.__post_init__(self)
        check_range("steps", self.steps, low=1)
        check_range("batch_size", self.batch_size, low=1)
        check_range("max_length", self.max_length, low=2)
        check_range("length_window", self.length_window, low=1)


@dataclass(frozen=True)
class SFTLogConfig:
    live: bool = True  # progress: a rich live view on a terminal, one plain line per step elsewhere; false = none
    tensorboard: bool = False  # also write the step metrics for TensorBoard (RUN_DIR/tensorboard)


@dataclass(frozen=True)
class SFTJobConfig:
    """``rltk sft CONFIG``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    log: SFTLogConfig = field(default_factory=SFTLogConfig)
    seed: int = 0
    run_dir: str | None = None  # default: runs/sft-YYYYmmdd-HHMMSS


def load_sft_config(path: str | Path, overrides: Sequence[str] = ()) -> SFTJobConfig:
    """``load_config`` for SFT; a relative ``data.source`` is relative to the file's folder when it exists there."""
    cfg = load_config(SFTJobConfig, path, list(overrides))
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source=config_relative(cfg.data.source, path)))


@dataclass
class Example:
    prompt_ids: list[int]
    completion_ids: list[int]  # the reply's tokens + EOS


@dataclass
class SFTResult:
    run_dir: Path
    adapter_dir: Path
    history: list[dict[str, Any]]
    policy: Policy


def encode_examples(ds: Dataset, tokenizer: Any, eos_id: int, max_length: int) -> list[Example]:
    """Prompt through the chat template (with the generation prompt); reply tokens + EOS. Prompt and reply
    are what ``ds.messages(i)`` and ``ds.completion(i)`` give: templates or TRL's formats (:class:`DataConfig`)."""
    out = []
    for i in range(len(ds)):
        prompt = encode_prompt(tokenizer, ds.messages(i))
        reply = ds.completion(i)
        if not reply.strip():
            raise UserError(f"{ds.where[i]}: empty completion ({ds.completion_source()})")
        completion = list(tokenizer(reply, add_special_tokens=False)["input_ids"]) + [eos_id]
        if len(prompt) + len(completion) > max_length:
            raise UserError(f"{ds.where[i]}: {len(prompt) + len(completion)} tokens, more than sft.max_length={max_length}")
        out.append(Example(prompt, completion))
    return out


def length_batches(lengths: list[int], batch_size: int, window: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches: shuffle, sort each window of ``window`` batches by length, cut, shuffle the batches.

    >>> batches = length_batches([5, 1, 9, 2, 8, 3], 2, window=3, rng=random.Random(0))
    >>> sorted(i for b in batches for i in b), [sorted([5, 1, 9, 2, 8, 3][i] for i in b) for b in sorted(batches)][:1]
    ([0, 1, 2, 3, 4, 5], [[1, 2]])
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def completion_nll(model: Any, mb: MicroBatch | PrefixRows, total_tokens: int) -> torch.Tensor:
    """This micro-batch's share of the batch's mean completion-token cross-entropy."""
    if isinstance(mb, PrefixRows):  # the common prompt prefix once (rltk.logprobs.prefix_log_probs)
        return -prefix_log_probs(model, mb).sum() / max(total_tokens, 1)
    logp = completion_log_probs(model, mb)  # [n, T]
    return -(logp * mb.mask).sum() / max(total_tokens, 1)


def train_sft(cfg: SFTJobConfig, *, policy: Policy | None = None, live: bool | None = None,
              claimed_dir: bool = False) -> SFTResult:
    """LoRA/QLoRA SFT as configured; writes ``RUN_DIR/adapter`` (peft format) and ``metrics.jsonl``.
    A ``run_dir`` holding another run's files is refused; ``claimed_dir``: the caller made it this run's."""
    data = load_dataset(cfg.data)
    data.check_for_prompts()
    run_dir = claimed_run_dir(cfg.run_dir) if claimed_dir and cfg.run_dir else claim_run_dir("sft", cfg.run_dir)
    write_config(run_dir, to_dict(dataclasses.replace(cfg, run_dir=str(run_dir))))
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    try:
        return _train(cfg, data, run_dir, policy, live)
    except BaseException:
        if not claimed_dir:  # a run that failed before writing anything leaves no empty folder
            release_if_unused(run_dir)
        raise


def _train(cfg: SFTJobConfig, data: Dataset, run_dir: Path, policy: Policy | None, live: bool | None) -> SFTResult:
    torch.manual_seed(cfg.seed)
    if policy is None:
        policy = policy_from_config(cfg.model, trainable=True)
    tok = policy.tokenizer
    examples = encode_examples(data, tok, eos_token_ids(policy)[0] if tok.eos_token_id is None else tok.eos_token_id,
                               cfg.sft.max_length)
    s = cfg.sft
    learner = Learner(policy, s, total_steps=s.steps, dense_base=None if s.dense_base else False)
    rng = random.Random(f"sft-{cfg.seed}")
    lengths = [len(e.prompt_ids) + len(e.completion_ids) for e in examples]
    log = MetricsLog(run_dir, tensorboard=cfg.log.tensorboard)
    pad = tok.pad_token_id
    # a micro-batch's common prompt prefix runs once (its KV cache keeps its graph: not with checkpointing)
    rows = prefix_rows if not is_checkpointing(policy.model) else lambda p, c: collate(p, c, pad, policy.device)
    queue: list[list[int]] = []
    epoch = 0
    with LiveView(s.steps, 0, "SFT", SFT_COLUMNS, enabled=cfg.log.live if live is None else live) as view:
        for step in range(s.steps):
            if not queue:
                queue = length_batches(lengths, s.batch_size, s.length_window, rng)
                epoch += 1
            batch = queue.pop(0)
            t0 = time.perf_counter()
            batch.sort(key=lambda i: lengths[i])  # micro-batches of similar length
            total = sum(len(examples[i].completion_ids) for i in batch)
            micro = [rows([examples[i].prompt_ids for i in c], [examples[i].completion_ids for i in c])
                     for c in (batch[k:k + s.micro_batch_size] for k in range(0, len(batch), s.micro_batch_size))]
            stats = learner.apply(micro, lambda mb: completion_nll(policy.model, mb, total), step)
            seconds = time.perf_counter() - t0
            record = {"step": step + 1, "epoch": epoch, "loss": stats.loss if not stats.skipped else None, "lr": stats.lr,
                      "grad_norm": stats.grad_norm, "skipped": stats.skipped, "tokens": sum(lengths[i] for i in batch),
                      "tokens_run": sum(mb.n_run for mb in micro),  # shared prefixes once: the work done
                      "completion_tokens": total, "seconds/step": seconds,
                      "tokens_per_s": sum(lengths[i] for i in batch) / seconds if seconds > 0 else None}
            view.update(record, log.log(record))
            if stats.skipped:
                view.note(f"[red]SFT step {step + 1}: update skipped: {stats.skipped}[/red]")
    log.close()
    adapter_dir = run_dir / "adapter"
    save_adapter(policy, adapter_dir, cfg.data.prompt_record())
    return SFTResult(run_dir, adapter_dir, log.history, policy)


def warm_start(config_path: str | Path, out_dir: str | Path, live: bool | None = None, policy: Policy | None = None) -> Path:
    """Run the SFT config at ``config_path`` into ``out_dir`` (once: an existing adapter there is reused,
    e.g. when a GRPO run is resumed) and return its adapter folder. With ``policy`` the SFT trains that
    policy's LoRA in place (the GRPO job then continues from it); else its own model is freed afterwards."""
    out = Path(out_dir)
    adapter = out / "adapter"
    if (adapter / "adapter_config.json").is_file():
        if policy is not None:
            load_adapter_into(policy.model, adapter)
        return adapter
    path = Path(config_path)
    if not path.is_file():
        raise UserError(f"warm_start: SFT config {config_path} not found")
    cfg = load_sft_config(path, [f"run_dir={out}"])
    result = train_sft(cfg, live=live, policy=policy, claimed_dir=True)  # a killed attempt there is redone
    del result
    gc.collect()
    return adapter


__all__ = ["Example", "SFTConfig", "SFTJobConfig", "SFTResult", "encode_examples", "length_batches", "load_sft_config",
           "train_sft", "warm_start"]
