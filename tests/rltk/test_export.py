"""``rltk export``: the merged hf folder loads in a fresh process with plain transformers and says what
adapter-on-base says; GGUF f16 round-trips exactly through transformers' GGUF loader, q8_0 agrees on most
tokens; nf4 reloads 4-bit; the model card and Modelfile say what they should; bad input is one line, exit 2.
Fast tests run on a tiny Llama with a byte-level BPE tokenizer; the slow ones on the embedded SmolLM2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from deploy_helpers import PROMPTS, bpe_llama, greedy_tokens, perturbed_adapter, top1_agreement

from rltk.cli import main
from rltk.export import GGUF_FILE, export
from rltk.policy import load_policy

HERE = Path(__file__).parent
SUMMARY = {"accuracy": {"base": 0.25, "grpo": 0.5}, "format_rate": {"base": 0.5, "grpo": 1.0},
           "pass1_sampled": {"base": 0.2, "grpo": 0.45}, "n_eval_items": 8, "eval_samples": 4,
           "verdict_greedy": "GRPO better than BASE by +25.0 points"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run folder as rltk writes one: adapter/ (on a local tiny base), config.yaml, summary.json."""
    root = tmp_path_factory.mktemp("export")
    base = bpe_llama(root / "base")
    run_dir = root / "runs" / "grpo-1"
    perturbed_adapter(str(base), run_dir / "adapter", prompt={"system_prompt": "Answer in one line."})
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"spec": str(base)}, "grpo": {"steps": 3}}))
    (run_dir / "summary.json").write_text(json.dumps(SUMMARY))
    return run_dir


def plain_transformers(folder: Path, gguf_file: str | None = None) -> list[list[int]]:
    """Greedy tokens of ``folder`` in a fresh Python process that imports transformers, not rltk."""
    argv = [sys.executable, str(HERE / "plain_generate.py"), str(folder)] + ([gguf_file] if gguf_file else [])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=str(folder.parent))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rltk_imported"] is False
    return result["tokens"]


def as_gguf_f16(model):
    """``model`` merged and rounded as a GGUF f16 file stores it: matrices to float16, norms kept float32."""
    model = model.merge_and_unload()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(p.half().float())
    return model


def reference_model(run_dir: Path, f16_matrices: bool = False):
    """Adapter-on-base (peft, unmerged, fp32); with ``f16_matrices``: :func:`as_gguf_f16` of it."""
    pol = load_policy(str(Path(run_dir).parent.parent / "base"), quant="none", adapter=str(run_dir / "adapter"),
                      trainable=False)
    return (as_gguf_f16(pol.model) if f16_matrices else pol.model), pol.tokenizer


def test_hf_export_loads_in_a_fresh_process_and_says_what_adapter_on_base_says(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the table's path on one line
    out = tmp_path / "hf"
    assert main(["export", str(run), "--out", str(out), "--format", "hf", "--dtype", "fp32"]) == 0
    shown = capsys.readouterr().out
    assert "size on disk" in shown and "load time" in shown and "model.safetensors" in shown
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "README.md"} <= files
    model, tok = reference_model(run)
    expect = greedy_tokens(model, tok)
    assert len(PROMPTS) == 20 and plain_transformers(out) == expect
    bare = load_policy(str(run.parent.parent / "base"), quant="none", lora=None, trainable=False)
    assert greedy_tokens(bare.model, tok) != expect  # the merged adapter is what makes the difference
    card = (out / "README.md").read_text()
    assert "base_model: " + str((run.parent.parent / "base").resolve()) in card
    assert "steps: 3" in card and "| grpo | 50.0% | 100.0% | 45.0% |" in card and "Answer in one line." in card


def test_gguf_f16_round_trips_exactly_through_transformers(run, tmp_path):
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export(run, tmp_path / "gguf", "gguf", gguf_type="f16")
    path = result.path / GGUF_FILE
    reader = gguf.GGUFReader(str(path))
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    ref, tok = reference_model(run, f16_matrices=True)
    cfg = ref.config
    assert field("general.architecture") == "llama" and field("llama.block_count") == cfg.num_hidden_layers
    assert (field("llama.attention.head_count"), field("llama.attention.head_count_kv")) == (4, 2)
    assert field("llama.context_length") == 256 and field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.eos_token_id") == tok.eos_token_id and field("tokenizer.chat_template") == tok.chat_template
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "F16" and types["blk.0.attn_norm.weight"] == "F32"
    assert "output.weight" not in types  # tied embeddings: llama.cpp reads token_embd
    back = AutoModelForCausalLM.from_pretrained(str(result.path), gguf_file=GGUF_FILE, dtype=torch.float32)
    sd = back.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ref.state_dict().items())  # q/k permutation undone, bit for bit
    back_tok = AutoTokenizer.from_pretrained(str(result.path), gguf_file=GGUF_FILE)
    chats = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    assert [back_tok(c)["input_ids"] for c in chats] == [tok(c)["input_ids"] for c in chats]
    assert plain_transformers(result.path, GGUF_FILE) == greedy_tokens(ref, tok)


def test_gguf_q8_0_agrees_with_the_merged_model_on_most_tokens(run, tmp_path):
    from transformers import AutoModelForCausalLM

    f16 = export(run, tmp_path / "f16", "gguf", gguf_type="f16", reload=False)
    q8 = export(run, tmp_path / "q8", "gguf", gguf_type="q8_0", reload=False)
    assert q8.size_bytes < 0.75 * f16.size_bytes
    model, tok = reference_model(run)
    back = AutoModelForCausalLM.from_pretrained(str(q8.path), gguf_file=GGUF_FILE, dtype=torch.float32)
    agree = top1_agreement(back, model, tok)
    same = sum(a == b for a, b in zip(greedy_tokens(back, tok), greedy_tokens(model, tok)))
    print(f"q8_0 vs fp32 adapter-on-base: top-1 agreement {agree:.3f}, identical greedy outputs {same}/20")
    assert agree >= 0.8  # measured 0.917 (8/20 identical) on this tiny random model, whose logits are close
    # together; a wrong layout or scale would agree by chance only (~1/320). SmolLM2: see the slow test.


def test_modelfile_has_the_chatml_template_stops_and_training_system_prompt(run, tmp_path):
    result = export(run, tmp_path / "gguf", "gguf", gguf_type="q8_0", reload=False)
    text = (result.path / "Modelfile").read_text()
    assert "FROM ./model.gguf\n" in text and 'SYSTEM """Answer in one line."""' in text
    assert "<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>" in text and 'PARAMETER stop "<|im_end|>"' in text
    (run.parent / "bare").mkdir()  # the same adapter without its training prompt: the template's default system
    shutil.copytree(run / "adapter", run.parent / "bare" / "adapter")
    (run.parent / "bare" / "adapter" / "rltk_prompt.json").unlink()
    bare = export(run.parent / "bare", tmp_path / "gguf-bare", "gguf", reload=False)
    assert 'SYSTEM """You are a helpful assistant."""' in (bare.path / "Modelfile").read_text()


def test_nf4_export_reloads_4bit_and_generates(run, tmp_path):
    from transformers import AutoModelForCausalLM

    result = export(run, tmp_path / "nf4", "nf4", reload=False)
    model = AutoModelForCausalLM.from_pretrained(str(result.path))
    kinds = {type(m.self_attn.q_proj.weight).__name__ for m in model.model.layers}
    assert kinds == {"Params4bit"} and model.config.quantization_config.bnb_4bit_quant_type == "nf4"
    _, tok = reference_model(run)
    tokens = greedy_tokens(model, tok, PROMPTS[:2], max_new_tokens=4)
    assert [len(t) for t in tokens] == [4, 4] or all(t[-1] == tok.eos_token_id for t in tokens)


@pytest.mark.parametrize("argv, culprit", [
    (["export", "{tmp}/nowhere", "--out", "{tmp}/o"], "nowhere does not exist"),
    (["export", "{tmp}", "--out", "{tmp}/o"], "neither a run folder"),
    (["export", "{run}", "--out", "{tmp}/o", "--format", "onnx"], "unknown --format 'onnx'"),
    (["export", "{run}", "--out", "{tmp}/o", "--dtype", "int3"], "unknown --dtype 'int3'"),
    (["export", "{run}", "--out", "{tmp}/o", "--format", "gguf", "--gguf-type", "q2"], "--gguf-type 'q2'"),
    (["export", "{run}", "--out", "{tmp}/o", "--format", "gguf", "--dtype", "fp16"], "--dtype applies to --format hf"),
    (["export", "{run}", "--out", "{full}"], "is not empty (give --force"),
    (["export", "{run}", "--out", "{run}", "--force"], "holds the adapter being exported"),
])
def test_bad_input_is_one_line_exit_2(run, tmp_path, capsys, argv, culprit):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    argv = [a.format(tmp=tmp_path, run=run, full=tmp_path / "full") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rltk: error:") and culprit in err and "\n" not in err
    assert (tmp_path / "full" / "keep.txt").is_file() and not (tmp_path / "o").exists()


def test_force_replaces_a_folder_and_gguf_refuses_a_non_bpe_tokenizer(run, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    assert main(["export", str(run), "--out", str(tmp_path / "out"), "--dtype", "fp32", "--force"]) == 0
    assert not (tmp_path / "out" / "old.txt").exists() and (tmp_path / "out" / "model.safetensors").is_file()
    tiny = perturbed_adapter("tiny-random", tmp_path / "tiny-adapter")  # a character-level WordLevel tokenizer
    assert main(["export", str(tiny), "--out", str(tmp_path / "g"), "--format", "gguf"]) == 2
    assert "needs a byte-level BPE tokenizer" in capsys.readouterr().err and not (tmp_path / "g").exists()
    assert not list(tmp_path.glob(".g.tmp-*"))  # the half-written folder is gone


# ----------------------------------------------------------------------------- the embedded SmolLM2 (slow)


@pytest.fixture(scope="module")
def smollm2_adapter(tmp_path_factory) -> Path:
    """An adapter on the embedded SmolLM2 as rltk saves it (base named by hub id), with B matrices perturbed."""
    return perturbed_adapter("smollm2-135m", tmp_path_factory.mktemp("smollm2") / "adapter", scale=0.02)


@pytest.mark.slow
def test_smollm2_hf_export_says_what_adapter_on_base_says_in_a_fresh_process(smollm2_adapter, tmp_path):
    result = export(smollm2_adapter, tmp_path / "hf", "hf", dtype="fp32", reload=False)
    pol = load_policy("smollm2-135m", quant="none", adapter=str(smollm2_adapter), trainable=False)
    assert plain_transformers(result.path) == greedy_tokens(pol.model, pol.tokenizer)
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in (result.path / "README.md").read_text()


@pytest.mark.slow
def test_smollm2_gguf_f16_same_tokens_and_q8_0_agreement(smollm2_adapter, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    load = lambda: load_policy("smollm2-135m", quant="none", adapter=str(smollm2_adapter), trainable=False)  # noqa: E731
    fp32, tok = load()
    expect, f16_expect = greedy_tokens(fp32, tok), greedy_tokens(as_gguf_f16(load().model), tok)
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS] + ["Ünïcode, digits 12345 and  spaces\n\ttabs"]
    for gguf_type in ("f16", "q8_0"):
        result = export(smollm2_adapter, tmp_path / gguf_type, "gguf", gguf_type=gguf_type, reload=False)
        back = AutoModelForCausalLM.from_pretrained(str(result.path), gguf_file=GGUF_FILE, dtype=torch.float32)
        if gguf_type == "f16":  # the writer stores the tokenizer alike for every tensor type: read back once
            back_tok = AutoTokenizer.from_pretrained(str(result.path), gguf_file=GGUF_FILE)
            assert [back_tok(t)["input_ids"] for t in texts] == [tok(t)["input_ids"] for t in texts]
        got = greedy_tokens(back, tok)
        agree = top1_agreement(back, fp32, tok, reference_tokens=expect)
        print(f"SmolLM2 GGUF {gguf_type}: identical greedy outputs {sum(a == b for a, b in zip(got, expect))}/20, "
              f"top-1 agreement {agree:.3f} (vs the fp32 adapter-on-base)")
        if gguf_type == "f16":  # the file adds nothing to f16 rounding: the same tokens as the rounded merged model
            assert got == f16_expect
            assert agree >= 0.97  # measured: 20/20 and 19/20 identical to fp32 in two runs (a near-tie), top-1 1.000
        else:
            assert agree >= 0.95  # measured 0.996 (19/20 identical outputs)
