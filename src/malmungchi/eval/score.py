"""Scoring gold items against predictions: the results lines and the summary both `eval score` and `eval run`
report."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from malmungchi.atomic import write_text
from malmungchi.eval.intervals import bootstrap_mean, rounded, wilson
from malmungchi.eval.normalize import NORMALIZER_VERSION, TIERS, ItemScore, Normalizer
from malmungchi.eval.records import GoldItem

METRICS = (*TIERS, "char_f1")


@dataclass
class Scored:
    gold: GoldItem
    prediction: str | None
    score: ItemScore
    extra: dict = field(default_factory=dict)  # stop_reason, fingerprint, ... (eval run)

    def line(self) -> dict:
        """The results line (DESIGN.md, stage 4)."""
        out = {"id": self.gold.id, "prediction": self.prediction, **self.score.tiers()}
        out.update(self.extra)
        out["normalizer"] = NORMALIZER_VERSION
        return out


@dataclass
class Summary:
    n_total: int
    n_scored: int
    n_missing: int
    means: dict[str, float]
    fixed_by: dict[str, int]  # normalization step → items it turned from wrong to right
    reasoning_removed: int
    n_extra: int = 0  # predictions whose id is not in the gold file
    cis: dict[str, list[float] | None] = field(default_factory=dict)  # metric → 95% interval [low, high]
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        cis = {f"{metric}_ci": ci for metric, ci in self.cis.items()}
        return {"normalizer_version": NORMALIZER_VERSION, "n_total": self.n_total, "n_scored": self.n_scored,
                "n_missing": self.n_missing, "n_extra": self.n_extra, **self.means, **cis, "fixed_by": self.fixed_by,
                "reasoning_removed": self.reasoning_removed, **self.extra}


def score_items(gold: Sequence[GoldItem], predictions: Mapping[str, str | None],
                normalizer: Normalizer) -> list[Scored]:
    """One `Scored` per gold item, in gold order; an id absent from `predictions` is a missing prediction."""
    return [Scored(g, predictions.get(g.key), normalizer.score(predictions.get(g.key), g.answers)) for g in gold]


def intervals(scored: Sequence[Scored]) -> dict[str, list[float] | None]:
    """Each metric's 95% interval: Wilson for the exact-match tiers (right / items), a seeded bootstrap of the
    mean for char F1 (`eval.intervals`)."""
    out = {tier: rounded(wilson(sum(int(getattr(s.score, tier)) for s in scored), len(scored))) for tier in TIERS}
    out["char_f1"] = rounded(bootstrap_mean([s.score.char_f1 for s in scored]))
    return out


def summarize(scored: Sequence[Scored], normalizer: Normalizer, n_extra: int = 0) -> Summary:
    """Means over every gold item (a missing prediction counts as 0) with their 95% intervals, and the per-step
    fix counts."""
    n = len(scored)
    missing = sum(1 for s in scored if s.prediction is None)
    means = {m: (sum(getattr(s.score, m) for s in scored) / n if n else 0.0) for m in METRICS}
    fixed = Counter(step for s in scored for step in s.score.fixed_by)
    return Summary(
        n_total=n,
        n_scored=n - missing,
        n_missing=missing,
        means={k: round(v, 6) for k, v in means.items()},
        fixed_by={name: fixed.get(name, 0) for name in normalizer.step_names},
        reasoning_removed=sum(1 for s in scored if s.score.reasoning_removed),
        n_extra=n_extra,
        cis=intervals(scored),
    )


def worst(scored: Iterable[Scored], limit: int) -> list[Scored]:
    """The mismatches (wrong on the headline tier) with the lowest character F1, missing ones last."""
    wrong = [s for s in scored if not s.score.em_normalized]
    wrong.sort(key=lambda s: (s.prediction is None, s.score.char_f1, s.gold.line))
    return wrong[:limit]


def dumps_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def write_results(path: str | Path, scored: Iterable[Scored]) -> None:
    write_text(path, "".join(dumps_line(s.line()) for s in scored))
