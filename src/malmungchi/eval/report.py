"""Rich tables and the progress bar for the eval commands (the `--json` forms come from the `as_dict` methods)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from malmungchi.eval.compare import HEADLINE, Comparison
from malmungchi.eval.unpaired import SampleGap, UnpairedGap
from malmungchi.eval.normalize import Normalizer
from malmungchi.eval.score import METRICS, Scored, Summary, worst
from malmungchi.tables import Fitted

SHOW_CHARS = 60
SMALL_DIFF = 4  # characters: a differing span up to this long shows its whitespace (␣ ⏎ ⇥ □)
_VISIBLE = str.maketrans({" ": "␣", "\n": "⏎", "\t": "⇥", "\u3000": "□"})
_BREAKS = str.maketrans({"\n": "⏎", "\r": "⏎", "\t": "⇥"})
_RUN = re.compile(r"([⏎⇥])\1{3,}")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def ci_text(ci) -> str:
    """A 95% interval as the tables show it: [68.1%, 72.3%] (– when there was nothing to count)."""
    return "–" if ci is None else f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def sample_text(sample: dict) -> str:
    """The summary's sample block in words: 1,500 of 13,000 (seed 0, stratified by source)."""
    how = f"seed {sample['seed']}" + (f", stratified by {sample['stratify']}" if sample.get("stratify") else "")
    return f"{sample['size']:,} of {sample['population']:,} ({how}; ids {sample['ids_sha']})"


def summary_table(summary: Summary, title: str = "exact match") -> Fitted:
    sample = summary.extra.get("sample")
    table = Fitted(title, ["metric", "score", "95% CI"], left=("metric",), title_justify="left",
                   caption=f"sample: {sample_text(sample)}" if sample else None)
    for metric in METRICS:
        label = f"{metric} (headline)" if metric == HEADLINE else metric
        table.add_row(Text(label, style="bold" if metric == HEADLINE else ""), _pct(summary.means[metric]),
                      ci_text(summary.cis.get(metric)))
    table.add_section()
    table.add_row("items", str(summary.n_total), "")
    table.add_row("scored", str(summary.n_scored), "")
    table.add_row("missing predictions", Text(str(summary.n_missing), style="yellow" if summary.n_missing else ""),
                  "")
    if summary.n_extra:
        table.add_row("predictions not in gold", Text(str(summary.n_extra), style="yellow"), "")
    table.add_row("reasoning blocks removed", str(summary.reasoning_removed), "")
    for reason, count in summary.extra.get("stop_reasons", {}).items():
        table.add_row(f"stopped by {reason}", str(count), "")
    return table


def steps_table(summary: Summary, normalizer: Normalizer) -> Fitted | str:
    """How many items each normalization step turned from wrong to right (the cost of each leniency); a
    single line when no step changed any verdict, rather than a table of zeros."""
    if not any(summary.fixed_by.get(step.name, 0) for step in normalizer.steps):
        return "normalization: no step turned an item from wrong to right"
    return Fitted("what each normalization step fixed", ["tier", "step", "items turned right"],
                  [[step.tier, step.name, str(summary.fixed_by.get(step.name, 0))] for step in normalizer.steps],
                  left=("tier", "step"), title_justify="left")


def _visible(text: str) -> str:
    return text.translate(_VISIBLE)


def _clip(text: str) -> str:
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS - 1] + "…"


def _one_line(text: str) -> str:
    """A prediction as one row of a table: line breaks and tabs shown as ⏎ and ⇥, a run of four or more as one
    with its count (an untrained model's 48 line breaks would otherwise be 48 empty lines: `⏎×48`), clipped to
    SHOW_CHARS."""
    return _clip(_RUN.sub(lambda m: f"{m[1]}×{len(m[0])}", text.translate(_BREAKS)))


def highlight_pair(gold: str, prediction: str) -> tuple[Text, Text]:
    """Both strings with the characters that differ highlighted (gold-only green, prediction-only red);
    whitespace inside a small difference (띄어쓰기, a character or a few) is made visible. A long differing span
    keeps its spaces, so that the table wraps it between words (and a log without colours reads as text)."""
    gold, prediction = _clip(gold), _clip(prediction)
    g, p = Text(), Text()
    matcher = difflib.SequenceMatcher(None, gold, prediction, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            g.append(gold[i1:i2])
            p.append(prediction[j1:j2])
        else:
            a, b = gold[i1:i2], prediction[j1:j2]
            if max(len(a), len(b)) <= SMALL_DIFF:
                a, b = _visible(a), _visible(b)
            g.append(a, style="bold green reverse")
            p.append(b, style="bold red reverse")
    return g, p


def worst_table(items: Sequence[Scored]) -> Table:
    table = Table(title="worst mismatches (normalized gold vs prediction)", show_edge=False, title_justify="left")
    table.add_column("id", overflow="fold")
    table.add_column("gold", overflow="fold")
    table.add_column("prediction", overflow="fold")
    table.add_column("char F1", justify="right")
    for s in items:
        if s.prediction is None:
            gold = Text(_clip(s.score.shown_gold or s.gold.answers[0]))
            table.add_row(Text(str(s.gold.id)), gold, Text("(missing)", style="dim italic"), "0.00")
            continue
        g, p = highlight_pair(s.score.shown_gold, s.score.shown_prediction)
        table.add_row(Text(str(s.gold.id)), g, p, f"{s.score.char_f1:.2f}")
    return table


def run_report(outcome, title: str, show: int, output: Path) -> list:
    """What `eval run` prints for a finished run (`outcome`: an `eval.run.RunOutcome`), in order: the summary, what
    each normalization step fixed, the `show` worst mismatches, and where the results are."""
    parts: list = [summary_table(outcome.summary, title=title), steps_table(outcome.summary, outcome.normalizer)]
    bad = worst(outcome.scored, show) if show else []
    if bad:
        parts.append(worst_table(bad))
    parts.append(f"results: {output}  (fingerprint {outcome.fingerprint})")
    return parts


class _RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} items/s" if task.speed else "", style="progress.data.speed")


class GenerationProgress:
    """The `eval run` progress bar on `console` (shown only on a terminal); `start` and `advance` are run_eval's
    `on_start` and `on_progress`."""

    def __init__(self, console: Console):
        columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), _RateColumn(), TimeRemainingColumn())
        self.progress = Progress(*columns, console=console, disable=not console.is_terminal)
        self.task = self.progress.add_task("generating", total=None)

    def __enter__(self) -> "GenerationProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, total: int, done: int) -> None:
        self.progress.update(self.task, total=total, completed=done)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)


def compare_table(c: Comparison) -> Fitted:
    level = int(round(100 * c.confidence))
    table = Fitted(f"A = {c.a.path}   B = {c.b.path}   ({len(c.paired)} paired items)",
                   ["metric", "A", "B", "B − A (points)", f"{level}% CI (paired bootstrap)"], left=("metric",),
                   title_justify="left")
    for metric, t in c.tiers.items():
        significant = t["ci_low"] > 0 or t["ci_high"] < 0
        style = ("green" if t["diff"] > 0 else "red") if significant else ""
        table.add_row(Text(metric, style="bold" if metric == HEADLINE else ""), _pct(t["a"]), _pct(t["b"]),
                      Text(f"{100 * t['diff']:+.1f}", style=style),
                      f"[{100 * t['ci_low']:+.1f}, {100 * t['ci_high']:+.1f}]")
    return table


def verdict(c: Comparison, alpha: float = 0.05) -> str:
    b, k = len(c.fixed), len(c.broken)
    head = (f"{HEADLINE}: {b} item{'s' * (b != 1)} fixed by B, {k} broken by B; "
            f"exact McNemar p = {c.mcnemar_p:.4g}")
    if c.mcnemar_p < alpha:
        better = "better" if b > k else "worse"
        return f"{head} → B is {better} than A (p < {alpha})."
    return f"{head} → no significant difference at p < {alpha}."


def flips_table(c: Comparison, limit: int) -> Table:
    table = Table(title=f"flipped items on {HEADLINE} (first {limit} each way)", show_edge=False,
                  title_justify="left")
    table.add_column("flip")
    table.add_column("id", overflow="fold")
    table.add_column("A prediction", overflow="fold")
    table.add_column("B prediction", overflow="fold")
    for label, ids, style in (("A✗ → B✓", c.fixed, "green"), ("A✓ → B✗", c.broken, "red")):
        for item_id in ids[:limit]:
            key = str(item_id)
            pa, pb = c.a.rows[key].get("prediction"), c.b.rows[key].get("prediction")
            table.add_row(Text(label, style=style), Text(key), Text(_one_line(pa if pa is not None else "(missing)")),
                          Text(_one_line(pb if pb is not None else "(missing)")))
    return table


def _points(x: float) -> str:
    return f"{100 * x:+.1f} points"


def sample_verdict(c: Comparison) -> str | None:
    """For a sample against its full set: is the gap between their means inside what sampling explains (and if
    not, is it the items or the runs)? None when neither file's ids are a subset of the other's."""
    side = c.sample_side
    if side is None:
        return None
    g: SampleGap = c.sampling[HEADLINE]
    n = len((c.a if side == "a" else c.b).rows)
    level = int(round(100 * c.confidence))
    head = (f"{HEADLINE}: sample ({side.upper()}) {_pct(g.sample)} vs full {_pct(g.full)}: {_points(g.gap)}, "
            f"{{}} what a {n:,}-item sample explains ({level}% range ±{100 * g.half_range:.1f}, p = {g.p_value:.3g})")
    if g.inside:
        return head.format("inside")
    why = []
    if not g.items_inside:
        easier = "easier" if g.items_gap > 0 else "harder"
        why.append(f"the sampled items are {easier} (the full run scores them {_pct(g.full_on_sample)}, "
                   f"{_points(g.items_gap)}): the sample is not representative")
    if abs(g.runs_gap) > g.half_range or g.items_inside:
        why.append(f"the runs score the same items differently ({_points(g.runs_gap)} on the sampled items): "
                   "another model or settings, or items it has seen")
    return head.format("outside") + " → " + "; ".join(why) + "."


def unpaired_verdict(c: Comparison) -> str | None:
    """For a partial overlap: the non-shared items compared unpaired. None for any other relation."""
    if not c.unpaired:
        return None
    g: UnpairedGap = c.unpaired[HEADLINE]
    low, high = g.ci
    level = int(round(100 * c.confidence))
    differ = low > 0 or high < 0
    tail = ("the non-shared items score differently: the files are not the same test" if differ
            else "no sign that the non-shared items differ")
    return (f"{HEADLINE} on the non-shared items: A {_pct(g.a)} ({g.n_a:,}) vs B {_pct(g.b)} ({g.n_b:,}): "
            f"{_points(g.diff)} ({level}% CI [{100 * low:+.1f}, {100 * high:+.1f}], p = {g.p_value:.3g}) → {tail}.")
