"""What travels beside an exported model: the model card (``README.md``: base model, adapter provenance, the run's
training config and its eval table from ``summary.json``) and, beside a GGUF file, an Ollama ``Modelfile`` (the
chat template in Ollama's Go-template form when it is ChatML, as SmolLM2's is; stop tokens; the system prompt
the adapter was trained with)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rltk import __version__
from rltk.policy import read_prompt

CHATML_TEMPLATE = (  # Ollama's Go template for ChatML; the system prompt comes in as the first message
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
)
_PROBE = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
_CHATML_PROBE = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
_CHATML_TURN = "<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def chatml_default_system(tokenizer: Any) -> tuple[bool, str | None]:
    """Whether the chat template renders ChatML, and the system prompt it adds when the messages bring none
    (SmolLM2's "You are a helpful AI assistant named SmolLM..."), both found by rendering the template."""
    if not getattr(tokenizer, "chat_template", None):
        return False, None
    render = lambda messages: tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # noqa: E731
    if render(_PROBE) != _CHATML_PROBE:
        return False, None
    head = render(_PROBE[1:]).removesuffix(_CHATML_TURN)
    prefix, suffix = "<|im_start|>system\n", "<|im_end|>\n"
    if head.startswith(prefix) and head.endswith(suffix):
        return True, head[len(prefix):-len(suffix)]
    return True, None


def modelfile(tokenizer: Any, gguf_name: str, system: str | None) -> str:
    """An Ollama Modelfile for ``./gguf_name``: ChatML template, stop tokens, and ``system`` (else the template's
    default system prompt) as SYSTEM."""
    chatml, default_system = chatml_default_system(tokenizer)
    lines = [f"# Ollama: ollama create NAME -f Modelfile && ollama run NAME (written by rltk {__version__})",
             f"FROM ./{gguf_name}"]
    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    if chatml:
        lines.append(f'TEMPLATE """{CHATML_TEMPLATE}"""')
        stops = list(dict.fromkeys(["<|im_end|>", "<|im_start|>", *stops]))
    else:
        lines.append("# the chat template is not ChatML: Ollama reads tokenizer.chat_template from the GGUF file")
    lines += [f'PARAMETER stop "{s}"' for s in stops]
    system = system or default_system
    if system:
        lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def _eval_table(summary: dict[str, Any]) -> list[str]:
    stages = list(summary.get("accuracy") or {})
    if not stages:
        return []
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    out = [f"## Evaluation (held-out, {summary.get('n_eval_items')} items, from the run's summary.json)", "",
           f"| stage | accuracy (greedy) | format | pass@1 ({summary.get('eval_samples')} samples) |", "|---|---|---|---|"]
    out += [f"| {s} | {pct(summary['accuracy'].get(s))} | {pct((summary.get('format_rate') or {}).get(s))} | "
            f"{pct((summary.get('pass1_sampled') or {}).get(s))} |" for s in stages]
    out += [""] + [f"- {k.removeprefix('verdict_')}: {summary[k]}" for k in ("verdict_greedy", "verdict_pass1")
                   if summary.get(k)]
    return out + [""]


def _usage(fmt: str, folder_name: str) -> list[str]:
    if fmt == "gguf":
        return ["```bash", "ollama create my-model -f Modelfile && ollama run my-model", "```"]
    return ["```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
            f'model = AutoModelForCausalLM.from_pretrained("{folder_name}")'
            + ("  # 4-bit NF4 (bitsandbytes)" if fmt == "nf4" else ""),
            f'tokenizer = AutoTokenizer.from_pretrained("{folder_name}")', "```"]


def model_card(*, fmt: str, detail: str, base: str, adapter: Path, run_dir: Path | None, folder_name: str) -> str:
    """``README.md`` of an export: front matter (base model), what was merged, how to load it, the training
    config and prompt, the eval table when the run has a ``summary.json``."""
    lines = ["---", f"base_model: {base}", "library_name: transformers", "tags: [rltk, lora-merged]", "---", "",
             f"# {folder_name}", "",
             f"The LoRA adapter `{adapter}` merged into `{base}` (`merge_and_unload`) and exported as **{fmt}** "
             f"({detail}) by rltk {__version__}.", ""]
    lines += ["## Use", ""] + _usage(fmt, folder_name) + [""]
    prompt = read_prompt(adapter)
    if prompt:
        lines += ["## Prompt it was trained with", "", "```json", json.dumps(prompt, indent=1), "```", ""]
    if run_dir is not None and (run_dir / "config.yaml").is_file():
        lines += [f"## Training config (`{run_dir / 'config.yaml'}`)", "", "```yaml",
                  (run_dir / "config.yaml").read_text().rstrip(), "```", ""]
    summary_path = run_dir / "summary.json" if run_dir is not None else None
    if summary_path is not None and summary_path.is_file():
        lines += _eval_table(json.loads(summary_path.read_text()))
    return "\n".join(lines)


__all__ = ["CHATML_TEMPLATE", "chatml_default_system", "model_card", "modelfile"]
