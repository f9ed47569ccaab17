"""Rich tables for `eval judge` (its `--json` form is the summary dict itself)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from malmungchi.eval.normalize import TIERS
from malmungchi.eval.report import ci_text, sample_text
from malmungchi.tables import Fitted

SHOW_CHARS = 50


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _clip(text: str | None) -> str:
    text = "(missing)" if text is None else text.replace("\n", "⏎")
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS - 1] + "…"


def summary_table(s: dict) -> Fitted:
    table = Fitted(f"LLM judge: {s['judge_model']} ({s['scale']} scale, prompt {s['prompt_sha']})",
                   ["", "value", "95% CI"], left=("",), title_justify="left",
                   caption=f"sample: {sample_text(s['sample'])}" if s.get("sample") else None)
    table.add_row(Text("judge accuracy", style="bold"), _pct(s["judge_accuracy"]),
                  ci_text(s["judge_accuracy_ci"]) + " Wilson")
    if s.get("mean_score") is not None:
        ci = s["mean_score_ci"]
        table.add_row(f"mean score (right: ≥ {s['pass_score']})", f"{s['mean_score']:.2f}",
                      f"[{ci[0]:.2f}, {ci[1]:.2f}] bootstrap")
    table.add_section()
    table.add_row("items", str(s["n_total"]), "")
    table.add_row("judged", str(s["n_judged"]), "")
    table.add_row("no verdict (left out, not 0)", Text(str(s["n_failed"]), style="yellow" if s["n_failed"] else ""),
                  "")
    if s["n_no_prediction"]:
        table.add_row("no prediction", Text(str(s["n_no_prediction"]), style="yellow"), "")
    table.add_row("asked now / resumed", f"{s['asked']} / {s['resumed']}", "")
    table.add_row("structured output (last verdict now)", str(s["structured_output"] or "none"), "")
    u = s["usage"]
    table.add_row("tokens in / out", f"{u['prompt_tokens']:,} / {u['completion_tokens']:,}", "")
    table.add_row("cost", "give --price-input and --price-output" if s["cost_usd"] is None
                  else f"${s['cost_usd']:.4f}", "")
    return table


def agreement_table(s: dict) -> Fitted:
    table = Fitted("judge vs exact match (items with a verdict)",
                   ["tier", "both right", "judge only", "EM only", "both wrong", "agreement", "Cohen's κ"],
                   left=("tier",), title_justify="left")
    for tier in TIERS:
        a = s["agreement"][tier]
        kappa = "–" if a["kappa"] is None else f"{a['kappa']:.3f}"
        table.add_row(tier, str(a["judge_yes_em_yes"]), str(a["judge_yes_em_no"]), str(a["judge_no_em_yes"]),
                      str(a["judge_no_em_no"]), _pct(a["agreement"]), kappa)
    return table


def disagreements_table(s: dict) -> Table:
    table = Table(title=Text(f"where the judge and em_normalized disagree most ({s['n_disagreements']} in all)"),
                  show_edge=False, title_justify="left")
    for col in ("id", "judge", "EM", "char F1", "gold", "prediction", "reason"):
        table.add_column(col, overflow="fold")
    for d in s["disagreements"]:
        # Text, not markup: a prediction or reason may hold `[/INST]`, which rich would read as a closing tag
        table.add_row(*(Text(x) for x in (str(d["id"]), str(d["score"]), str(d["em_normalized"]),
                                          f"{d['char_f1']:.2f}", _clip(d["answer"]), _clip(d["prediction"]),
                                          _clip(d["reason"]))))
    return table
