"""Showing results: short rich tables on screen, and Markdown reports."""

from __future__ import annotations

from typing import Any

from evals.compare import Comparison
from evals.reasoning import reasoning_rows
from evals.task_metrics import metric_rows as task_metric_rows
from evals.result import EvalResult


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list[float] | tuple[float, float] | None) -> str:
    return "" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def metric_rows(result: EvalResult) -> list[tuple[str, str]]:
    """(name, value) pairs summarising a run, shared by the rich table and the Markdown report."""
    m, cfg = result.metrics, result.config
    rows: list[tuple[str, str]] = []
    decoding = "greedy" if cfg["n_samples"] == 1 and not cfg["temperature"] else f"{cfg['n_samples']} samples, T={cfg['temperature']:g}"
    rows.append(("items", f"{m['n_items']} ({decoding})"))
    if "accuracy" in m:
        name = "accuracy" if m["n_samples"] == 1 else "accuracy (mean pass@1)"
        rows.append((name, f"{_pct(m['accuracy'])}  95% CI {_ci(m['accuracy_ci'])} ({m['ci_method']})"))
    else:
        rows.append(("score", f"{m['score']:.3f}  95% CI [{m['score_ci'][0]:.3f}, {m['score_ci'][1]:.3f}]"))
    for k, v in (m.get("pass@k") or {}).items():
        if m["n_samples"] > 1:
            rows.append((f"pass@{k}", _pct(v)))
    for k, v in (m.get("maj@k") or {}).items():
        if int(k) > 1:
            rows.append((f"maj@{k}", _pct(v)))
    if "macro_f1" in m:
        rows.append(("macro-F1", f"{m['macro_f1']:.3f}"))
    rows.append(("format compliance", _pct(m.get("format_rate"))))
    rows += reasoning_rows(m)
    rows += task_metric_rows(m)
    rows.append(("mean completion", f"{m['mean_completion_tokens']:.1f} tokens"))
    rows.append(("truncated", _pct(m["truncated_rate"])))
    for lab, r in m.get("rewards", {}).items():
        fails = m.get("reward_failures", {}).get(lab, 0)
        extra = f" ({fails} failed)" if fails else ""
        mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
        rows.append((f"reward {lab}", f"{mean}{extra}"))
    t = m.get("timing", {})
    if t.get("tokens_per_s"):
        rows.append(("throughput", f"{t['items_per_s']:.2f} items/s, {t['tokens_per_s']:.1f} tokens/s"))
        rows.append(("wall time", f"{t['wall_seconds']:.1f} s (generation {t['generation_seconds']:.1f} s, scoring {t['scoring_seconds']:.1f} s)"))
    return rows


def result_table(result: EvalResult) -> Any:
    from rich.table import Table

    cfg = result.config
    model = cfg.get("model") or "?"
    if cfg.get("adapter"):
        model += f" + {cfg['adapter']}"
    table = Table(title=f"eval {result.task} · {model}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in metric_rows(result):
        table.add_row(name, value)
    return table


def per_class_table(result: EvalResult) -> Any | None:
    from rich.table import Table

    pc = result.metrics.get("per_class")
    if not pc:
        return None
    table = Table(title="per class", title_justify="left")
    for col in ("label", "support", "predicted", "accuracy", "F1"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for lab, r in pc.items():
        table.add_row(lab, str(r["support"]), str(r["predicted"]), _pct(r["accuracy"]) if r["support"] else "-", f"{r['f1']:.3f}")
    return table


def comparison_table(c: Comparison, a_label: str | None = None, b_label: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=f"compare {c.task} · {c.n_items} items · {c.metric}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(a_label or c.a_name, _pct(c.a_mean))
    table.add_row(b_label or c.b_name, _pct(c.b_mean))
    table.add_row("difference", f"{100 * c.diff:+.1f} points, 95% CI [{100 * c.ci[0]:+.1f}, {100 * c.ci[1]:+.1f}] (paired bootstrap)")
    table.add_row("flips", f"{len(c.improved)} improved, {len(c.regressed)} regressed")
    table.add_row("test", f"{c.test}: {_p_text(c)}")
    for note in c.notes:
        table.add_row("note", note)
    return table


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ⏎ ")


def result_markdown(result: EvalResult, examples: int = 5) -> str:
    """A Markdown report: config, metrics, per-class table, and a few items."""
    cfg = result.config
    lines = [f"# Eval: {result.task}", ""]
    lines += [f"- model: `{cfg.get('model')}`" + (f" + adapter `{cfg['adapter']}`" if cfg.get("adapter") else "")]
    lines += [f"- data: `{cfg.get('data')}`, seed {cfg.get('seed')}, max new tokens {cfg.get('max_new_tokens')}, few-shot {cfg.get('few_shot')}"]
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {n} | {_md_escape(v)} |" for n, v in metric_rows(result)]
    pc = result.metrics.get("per_class")
    if pc:
        lines += ["", "## Per class", "", "| label | support | predicted | accuracy | F1 |", "|---|---:|---:|---:|---:|"]
        for lab, r in pc.items():
            acc = _pct(r["accuracy"]) if r["support"] else "-"
            lines.append(f"| {lab} | {r['support']} | {r['predicted']} | {acc} | {r['f1']:.3f} |")
    if examples and result.records:
        lines += ["", f"## First {min(examples, len(result.records))} items", "", "| id | gold | answer | score | completion |", "|---|---|---|---:|---|"]
        for r in result.records[:examples]:
            s = r["samples"][0]
            comp = s["completion"][:200] + ("…" if len(s["completion"]) > 200 else "")
            lines.append(f"| {_md_escape(str(r['id']))} | {_md_escape(str(r['gold'])[:60])} | {_md_escape(str(s['answer']))} | {r['score']:.2f} | {_md_escape(comp)} |")
    return "\n".join(lines) + "\n"


def _describe_run(r: EvalResult) -> str:
    cfg = r.config
    parts = [f"`{cfg.get('model')}`" + (f" + `{cfg['adapter']}`" if cfg.get("adapter") else "")]
    if cfg.get("dtype"):
        parts.append(str(cfg["dtype"]))
    parts.append("greedy" if cfg.get("n_samples") == 1 and not cfg.get("temperature") else f"{cfg.get('n_samples')} samples, T={cfg.get('temperature')}")
    if r.path:
        parts.append(f"`{r.path}`")
    return ", ".join(parts)


def comparison_markdown(c: Comparison, a: EvalResult, b: EvalResult, max_items: int = 20) -> str:
    lines = [f"# Compare: {c.task}", "", f"**{c.verdict}**", "", "| | value |", "|---|---|"]
    lines.append(f"| {c.a_name} | {_pct(c.a_mean)} ({_describe_run(a)}) |")
    lines.append(f"| {c.b_name} | {_pct(c.b_mean)} ({_describe_run(b)}) |")
    lines.append(f"| difference | {100 * c.diff:+.1f} points, 95% CI [{100 * c.ci[0]:+.1f}, {100 * c.ci[1]:+.1f}] |")
    lines.append(f"| test | {c.test}, {_p_text(c)} |")
    lines.append(f"| flips | {len(c.improved)} improved, {len(c.regressed)} regressed |")
    for title, ids in (("Improved (B > A)", c.improved), ("Regressed (B < A)", c.regressed)):
        if ids:
            shown = ", ".join(f"`{i}`" for i in ids[:max_items]) + (f" and {len(ids) - max_items} more" if len(ids) > max_items else "")
            lines += ["", f"## {title}: {len(ids)}", "", shown]
    for note in c.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def _p_text(c: Any) -> str:
    """``p = 0.0123``, ``p <= 1e-04`` when the test's floor is reached, and the Wilcoxon second opinion."""
    text = f"p <= {c.p_value:.2g}" if c.p_value <= c.p_floor else f"p = {c.p_value:.4g}"
    if c.p_wilcoxon is not None:
        text += f"; Wilcoxon signed-rank p = {c.p_wilcoxon:.2g}"
    return text
