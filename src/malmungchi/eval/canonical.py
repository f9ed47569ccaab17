"""Scores that mean the same under every marker policy: predictions mapped back to canonical marker spelling,
then compared on content (markers and asides removed, `prep.identity.content_text`) and on marker fidelity.

- `content_em` / `content_char_f1`: the prediction's content against the gold answer's canonical content.
- marker fidelity: per marker name, how often the prediction has it where the canonical answer has it
  (true positives are the smaller count per item); precision, recall and F1 over the items.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import regex

from malmungchi.eval.normalize import Normalizer, char_f1
from malmungchi.prep.identity import content_text

CANONICAL_MARKER = regex.compile(r"\|([A-Z][A-Z0-9_]*)\|>")


def spellings(markers: dict) -> list[tuple[str, str]]:
    """(what the build rendered, canonical `|NAME|>`) for each marker a build's manifest renders other than
    canonically, longest first (a `replace:` string, a `<|name|>` token)."""
    pairs = [(info["rendered"], f"|{name}|>") for name, info in markers.items()
             if info.get("rendered") and info["rendered"] != f"|{name}|>"]
    return sorted(pairs, key=lambda p: -len(p[0]))


def to_canonical(text: str, pairs: list[tuple[str, str]]) -> str:
    for rendered, canonical in pairs:
        text = text.replace(rendered, canonical)
    return text


def marker_counts(canonical: str) -> Counter:
    return Counter(CANONICAL_MARKER.findall(canonical))


def content_scores(prediction: str | None, answer_canonical: str, pairs: list[tuple[str, str]],
                   normalizer: Normalizer) -> dict:
    """content_em, content_char_f1 and the marker counts of one item (prediction cut where `eval run` cuts)."""
    gold = content_text(answer_canonical)
    if prediction is None:
        return {"content_em": 0, "content_char_f1": 0.0, "pred_markers": Counter(),
                "gold_markers": marker_counts(answer_canonical)}
    canonical = to_canonical(normalizer.tier(prediction, "em_strict"), pairs)
    pred = content_text(canonical)
    return {"content_em": int(pred == gold), "content_char_f1": round(char_f1(pred, gold), 6),
            "pred_markers": marker_counts(canonical), "gold_markers": marker_counts(answer_canonical)}


def fidelity(items: Iterable[dict]) -> dict[str, dict]:
    """Per marker name: gold and predicted counts, true positives, precision, recall, F1."""
    tp, pred, gold = Counter(), Counter(), Counter()
    for it in items:
        p, g = it["pred_markers"], it["gold_markers"]
        pred.update(p)
        gold.update(g)
        for name in p.keys() & g.keys():
            tp[name] += min(p[name], g[name])
    out = {}
    for name in sorted(pred.keys() | gold.keys()):
        prec = tp[name] / pred[name] if pred[name] else None
        rec = tp[name] / gold[name] if gold[name] else None
        if gold[name] == 0:
            f1 = None  # nothing to find: precision alone says how often it was made up
        else:
            f1 = 2 * prec * rec / (prec + rec) if prec and rec else 0.0  # never predicted, or never right: 0
        out[name] = {"gold": gold[name], "predicted": pred[name], "true_positives": tp[name], "precision": prec,
                     "recall": rec, "f1": f1}
    return out
