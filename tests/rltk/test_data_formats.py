"""Training data the way TRL users have it: parquet/arrow through `datasets`, TRL's standard and
conversational formats (prompt, prompt + completion, messages), `data.format`, `data.prompt={q}`."""

from __future__ import annotations

import json

import datasets
import pytest

from rltk.core.config import load_config
from rltk.core.errors import UserError
from rltk.core.rows import read_rows
from rltk.data import DataConfig, load_dataset
from rltk.grpo import GRPOJobConfig, train
from rltk.policy import tiny_tokenizer
from rltk.sft import SFTJobConfig, encode_examples, train_sft

USER, BOT = "<|im_start|>user\n", "<|im_start|>assistant\n"  # the tiny tokenizer's ChatML


def _jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _trained_on(ds) -> list[tuple[str, str]]:
    """What SFT trains on: (prompt text through the chat template, reply text); the reply ends with EOS."""
    tok = tiny_tokenizer()
    out = []
    for ex in encode_examples(ds, tok, tok.eos_token_id, 1024):
        assert ex.completion_ids[-1] == tok.eos_token_id
        out.append((tok.decode(ex.prompt_ids), tok.decode(ex.completion_ids[:-1])))
    return out


CONVERSATIONAL = [  # TRL's conversational prompt-completion; the second prompt's turns differ in keys
    {"prompt": [{"role": "user", "content": "1+1?"}], "completion": [{"role": "assistant", "content": "2"}]},
    {"prompt": [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "2+2?", "name": "kid"}],
     "completion": [{"role": "assistant", "content": "4"}]},
]


def test_parquet_rows_come_through_datasets_named_by_row(tmp_path):
    path = tmp_path / "pairs.parquet"
    datasets.Dataset.from_list([{"question": "1+1", "solution": "2"}, {"question": "2+2", "solution": "4"}]).to_parquet(path)
    rows = read_rows(path)
    assert rows.rows == [{"question": "1+1", "solution": "2"}, {"question": "2+2", "solution": "4"}]
    assert rows.where == ["pairs.parquet:row 1", "pairs.parquet:row 2"]
    odd = tmp_path / "odd [1] *.parquet"  # the path is no glob pattern
    odd.write_bytes(path.read_bytes())
    assert read_rows(odd).where == ["odd [1] *.parquet:row 1", "odd [1] *.parquet:row 2"]
    ds = load_dataset(DataConfig(source=str(path), system_prompt="S"))  # SFT and GRPO read the same rows
    assert ds.messages(1) == [{"role": "system", "content": "S"}, {"role": "user", "content": "2+2"}]
    assert ds.completion(1) == "4"
    assert _trained_on(ds)[1] == ("<|im_start|>system\nS<|im_end|>\n" + USER + "2+2<|im_end|>\n" + BOT, "4")


def test_conversational_parquet_keeps_the_messages_without_arrows_null_keys(tmp_path):
    path = tmp_path / "chat.parquet"
    datasets.Dataset.from_list(CONVERSATIONAL).to_parquet(path)
    ds = load_dataset(DataConfig(source=str(path)))
    assert ds.rows[0]["prompt"] == [{"role": "user", "content": "1+1?", "name": None}]  # arrow unified the structs
    assert ds.messages(0) == [{"role": "user", "content": "1+1?"}]
    assert ds.messages(1) == [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "2+2?", "name": "kid"}]
    assert [ds.completion(i) for i in range(2)] == ["2", "4"]


def test_arrow_file_and_save_to_disk_folders(tmp_path):
    data = datasets.Dataset.from_list([{"question": "a", "solution": "b"}])
    data.save_to_disk(tmp_path / "saved")
    [arrow] = (tmp_path / "saved").glob("*.arrow")
    assert read_rows(arrow).rows == read_rows(tmp_path / "saved").rows == [{"question": "a", "solution": "b"}]
    assert read_rows(tmp_path / "saved").where == ["saved:row 1"]
    datasets.DatasetDict({"train": data, "test": data}).save_to_disk(tmp_path / "splits")
    with pytest.raises(UserError, match=r"splits: holds the splits train, test; use one split's folder, e.g. .*splits/train"):
        read_rows(tmp_path / "splits")
    assert len(read_rows(tmp_path / "splits" / "train")) == 1
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match=r"plain: a folder, not a data file"):
        read_rows(tmp_path / "plain")
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(UserError, match=r"^fake\.parquet: cannot read as parquet: [^\n]+$"):
        read_rows(tmp_path / "fake.parquet")


def test_csv_with_quoted_newlines_trains_on_the_whole_field(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text('question,solution\n"line one\nline two, with comma",1\nplain,2\n')
    ds = load_dataset(DataConfig(source=str(path)))
    assert ds.where == ["rows.csv:2", "rows.csv:4"]
    assert ds.messages(0) == [{"role": "user", "content": "line one\nline two, with comma"}]
    assert _trained_on(ds)[0] == (USER + "line one\nline two, with comma<|im_end|>\n" + BOT, "1")


def test_messages_the_final_assistant_turn_is_the_target(tmp_path):
    path = _jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                      {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "user", "content": "only a prompt"}]},
    ])
    ds = load_dataset(DataConfig(source=path))
    assert ds.layout.messages == "messages" and ds.layout.completion is None
    assert ds.messages(0) == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                              {"role": "user", "content": "2+2?"}]
    assert ds.completion(0) == "4"
    assert ds.messages(1) == [{"role": "user", "content": "only a prompt"}]  # GRPO: a prompt-only conversation
    with pytest.raises(UserError, match=r"chat\.jsonl:2: column 'messages' does not end with an assistant turn"):
        ds.completion(1)
    [(prompt, reply)] = _trained_on(load_dataset(DataConfig(source=path, limit=1)))
    assert prompt == (USER + "hi<|im_end|>\n" + BOT + "hello<|im_end|>\n" + USER + "2+2?<|im_end|>\n" + BOT) and reply == "4"


def test_bad_messages_are_one_line_errors_naming_file_row_and_column(tmp_path):
    path = _jsonl(tmp_path / "rows.jsonl", [{"messages": [{"role": "user", "content": "a"}]}, {"messages": "oops"},
                                            {"messages": [{"role": "assistant", "content": "x"}]}])
    ds = load_dataset(DataConfig(source=path))
    with pytest.raises(UserError, match=r"^rows\.jsonl:2: column 'messages' must be a list of \{role, content\} messages$"):
        ds.check_for_prompts()  # before training: every row is checked
    with pytest.raises(UserError, match=r"rows\.jsonl:3: column 'messages' has no prompt turns \(only the assistant turn\)"):
        ds.messages(2)


def test_trl_standard_prompt_completion(tmp_path):
    path = _jsonl(tmp_path / "std.jsonl", [{"prompt": "The sky is", "completion": " blue."}])
    ds = load_dataset(DataConfig(source=path, system_prompt="Finish the sentence."))
    assert ds.messages(0) == [{"role": "system", "content": "Finish the sentence."}, {"role": "user", "content": "The sky is"}]
    assert ds.completion(0) == " blue."
    assert _trained_on(ds)[0][1] == " blue."
    prompt_only = load_dataset(DataConfig(source=_jsonl(tmp_path / "p.jsonl", [{"prompt": "The sky is", "answer": "x"}])))
    assert prompt_only.messages(0) == [{"role": "user", "content": "The sky is"}]  # GRPO's prompt-only rows


def test_trl_conversational_prompt_and_completion(tmp_path):
    ds = load_dataset(DataConfig(source=_jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL), system_prompt="Solve."))
    assert ds.messages(0) == [{"role": "system", "content": "Solve."}, {"role": "user", "content": "1+1?"}]
    assert ds.messages(1)[0] == {"role": "system", "content": "Be exact."}  # the row's own system turn wins
    assert [ds.completion(i) for i in range(2)] == ["2", "4"]
    assert _trained_on(ds)[1] == ("<|im_start|>system\nBe exact.<|im_end|>\n" + USER + "2+2?<|im_end|>\n" + BOT, "4")
    bad = _jsonl(tmp_path / "bad.jsonl", [{"prompt": [{"role": "user", "content": "q"}],
                                           "completion": [{"role": "user", "content": "not a reply"}]}])
    with pytest.raises(UserError, match=r"bad\.jsonl:1: column 'completion' must hold one assistant message, got roles \['user'\]"):
        load_dataset(DataConfig(source=bad)).completion(0)


def test_a_list_in_a_template_is_never_its_python_repr(tmp_path):
    path = _jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL)
    ds = load_dataset(DataConfig(source=path, format="template", prompt="{prompt}", completion="{completion}"))
    assert ds.messages(0) == [{"role": "user", "content": "1+1?"}] and ds.completion(0) == "2"  # a bare {column}: as is
    ds = load_dataset(DataConfig(source=path, prompt="Q: {prompt}"))
    with pytest.raises(UserError, match=r"conv\.jsonl:1: column 'prompt' holds a list, not text"):
        ds.messages(0)


def test_the_format_knob(tmp_path):
    conv = _jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL)
    with pytest.raises(UserError, match=r"conv\.jsonl:1: row lacks field 'question'"):
        load_dataset(DataConfig(source=conv, format="template")).check_for_prompts()
    assert load_dataset(DataConfig(source=conv, format="trl")).completion(1) == "4"
    both = _jsonl(tmp_path / "both.jsonl", [{"question": "q?", "prompt": "p?", "solution": "s", "completion": "c"}])
    auto = load_dataset(DataConfig(source=both))  # the default template's columns are there: read as before
    assert (auto.messages(0)[0]["content"], auto.completion(0)) == ("q?", "s")
    trl = load_dataset(DataConfig(source=both, format="trl"))
    assert (trl.messages(0)[0]["content"], trl.completion(0)) == ("p?", "c")
    with pytest.raises(ValueError, match="format 'trl' reads the rows' prompt"):
        DataConfig(format="trl", prompt="Q: {q}")
    with pytest.raises(UserError, match=r"format 'trl' needs a 'prompt' or 'messages' column; the first row has 'question'"):
        load_dataset(DataConfig(source=_jsonl(tmp_path / "q.jsonl", [{"question": "x"}]), format="trl"))
    with pytest.raises(UserError, match=r"'text' column \(TRL's language-modeling format\)"):
        load_dataset(DataConfig(source=_jsonl(tmp_path / "t.jsonl", [{"text": "The sky is blue."}])))
    text = load_dataset(DataConfig(source=str(tmp_path / "t.jsonl"), prompt="Go on: {text}", completion="{text}"))
    assert (text.messages(0)[0]["content"], text.completion(0)) == ("Go on: The sky is blue.", "The sky is blue.")


def test_prompt_given_unquoted_on_the_command_line_is_read_back_as_a_template(tmp_path):
    cfg = load_config(SFTJobConfig, None, overrides=["data.prompt={q}", "data.completion={a}"])
    assert (cfg.data.prompt, cfg.data.completion) == ("{q}", "{a}")
    path = tmp_path / "sft.yaml"
    path.write_text("data:\n  prompt: {q}\n")
    assert load_config(SFTJobConfig, path).data.prompt == "{q}"
    with pytest.raises(UserError, match=r"data\.prompt: YAML read an unquoted \{\.\.\.\} as the mapping .*; quote the template"):
        load_config(SFTJobConfig, None, overrides=["data.prompt={q, a}"])
    assert load_config(SFTJobConfig, None, overrides=['data.prompt="Q: {q}"']).data.prompt == "Q: {q}"


TINY = {"spec": "tiny-random", "quant": "none", "lora": {"r": 4, "alpha": 8}}


@pytest.mark.parametrize("kind", ["parquet", "messages"])
def test_sft_trains_from_parquet_and_messages_files(tmp_path, kind):
    if kind == "parquet":
        source = tmp_path / "chat.parquet"
        datasets.Dataset.from_list(CONVERSATIONAL).to_parquet(source)
    else:
        source = _jsonl(tmp_path / "chat.jsonl", [
            {"messages": [{"role": "user", "content": f"{i}+{i}?"}, {"role": "assistant", "content": str(2 * i)}]}
            for i in range(4)])
    cfg = load_config(SFTJobConfig, None, [
        f"model={json.dumps(TINY)}", f"data.source={source}", "sft.steps=2", "sft.batch_size=2", "sft.warmup_steps=0",
        "log.live=false", f"run_dir={tmp_path / 'run'}"])
    result = train_sft(cfg)
    assert [r["step"] for r in result.history] == [1, 2] and all(r["loss"] > 0 for r in result.history)
    assert (result.adapter_dir / "adapter_config.json").is_file()


def test_grpo_trains_from_conversational_prompts(tmp_path):
    source = _jsonl(tmp_path / "prompts.jsonl", [
        {"prompt": [{"role": "system", "content": "Answer."}, {"role": "user", "content": f"{i}+1?"}], "answer": str(i + 1)}
        for i in range(4)])
    cfg = load_config(GRPOJobConfig, None, [
        f"model={json.dumps(TINY)}", f"data.source={source}", "sampling.group_size=2", "sampling.max_new_tokens=4",
        "grpo.steps=1", "grpo.prompts_per_step=2", "checkpoint.every=0", "log.live=false", "log.samples_every=1",
        "rewards=[{name: math_answer}]", f"run_dir={tmp_path / 'run'}"])
    assert load_dataset(cfg.data).messages(3) == [{"role": "system", "content": "Answer."}, {"role": "user", "content": "3+1?"}]
    result = train(cfg)
    assert len(result.history) == 1 and "reward_mean" in result.history[0]
    samples = [json.loads(x) for x in (result.run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["row"]["prompt"][-1]["role"] == "user" for s in samples)  # the rows' columns, as read
