"""The one answer normalizer, shared by `eval score` and `eval run`, and the per-item scores built on it.

Exact match on Korean model output fails for reasons that have nothing to do with the answer: a decomposed
(NFD) syllable from a macOS file, a full-width digit typed on a Korean IME, a zero-width space pasted from the
web, an end-of-turn token the decoder did not cut, a `<think>` block a Qwen3-style template asks for. The
tiers make each of those visible instead of silently forgiving them:

- `em_strict`: reasoning removed, cut at the first end marker, trimmed. Nothing else is forgiven.
- `em_normalized` (the headline): strict + NFC, no zero-width characters, full-width ASCII folded, whitespace
  runs collapsed. Only differences no reader would see.
- `em_lenient`: normalized + lower case, no punctuation, no whitespace. Forgives a final period or spacing
  (띄어쓰기) but never a different particle: `학교에` and `학교를` stay different on every tier.

Every step is a named, ordered function so a report can say how many items each one turned from wrong to
right. Change any step's behaviour and bump `NORMALIZER_VERSION`: results files and `eval run` fingerprints
carry it, so old and new scores are never mixed silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

NORMALIZER_VERSION = 1

TIERS = ("em_strict", "em_normalized", "em_lenient")

# End-of-sequence / end-of-turn spellings of the common chat families, always cut at.
ALWAYS_END_MARKERS: tuple[str, ...] = (
    "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<end_of_turn>", "</s>",
)

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_WHITESPACE_RUN = re.compile(r"\s+")
_ANY_WHITESPACE = re.compile(r"\s")
_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
# `<|sound|>`-style special tokens and canonical `|NAME|>` markers (see DESIGN.md, marker grammar).
_MARKER_TOKEN = re.compile(r"<\|[A-Za-z_][A-Za-z0-9_]*\|>|\|[A-Z][A-Z0-9_]*\|>")


def strip_reasoning(text: str, end_markers: Iterable[str] = ()) -> tuple[str, bool]:
    """Remove `<think>…</think>` blocks, a reasoning prefix closed by a `</think>` whose opening tag was in the
    prompt, and an unclosed leading `<think>` (generation cut off while still reasoning). Returns the text and
    whether anything was removed.

    The last two rules look only at the text before the first end marker: what a model babbles after its turn
    ended (often a made-up next turn with its own `</think>`) must not decide what its answer was."""
    out = _THINK_BLOCK.sub("", text)
    end = len(cut_at_end_marker(out, end_markers))
    head, tail = out[:end], out[end:]
    if _THINK_CLOSE in head:  # its `<think>` was part of the prompt (templates that open the block themselves)
        head = head.rsplit(_THINK_CLOSE, 1)[1]
    if head.lstrip().startswith(_THINK_OPEN):
        head = ""
    out = head + tail
    return out, out != text


def cut_at_end_marker(text: str, markers: Iterable[str]) -> str:
    """Everything before the earliest end-of-sequence/turn marker."""
    cut = len(text)
    for marker in markers:
        if marker:
            at = text.find(marker)
            if 0 <= at < cut:
                cut = at
    return text[:cut]


def drop_marker_tokens(text: str) -> str:
    return _MARKER_TOKEN.sub("", text)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def remove_zero_width(text: str) -> str:
    return text.translate(_ZERO_WIDTH)


def fold_full_width(text: str) -> str:
    """U+FF01–U+FF5E to their ASCII forms, the ideographic space U+3000 to a space."""
    return text.translate(_FULL_WIDTH)


def collapse_whitespace(text: str) -> str:
    """Every whitespace run to one space, and trimmed again (earlier steps can expose edge whitespace)."""
    return _WHITESPACE_RUN.sub(" ", text).strip()


def remove_punctuation(text: str) -> str:
    """Drop every character of a Unicode punctuation category (Pc, Pd, Ps, Pe, Pi, Pf, Po)."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def remove_whitespace(text: str) -> str:
    return _ANY_WHITESPACE.sub("", text)


@dataclass(frozen=True)
class Step:
    """One normalization step: `tier` is the tier it belongs to; prediction-only steps leave the gold alone."""

    name: str
    tier: str
    fn: Callable[[str], str]
    prediction_only: bool = False


@dataclass(frozen=True)
class ItemScore:
    em_strict: int
    em_normalized: int
    em_lenient: int
    char_f1: float
    reasoning_removed: bool = False
    # the steps that turned this item from wrong to right (best over the gold strings)
    fixed_by: tuple[str, ...] = ()
    # the gold string the scores came from and both sides as the normalized tier sees them (for reports)
    best_gold: str | None = None
    shown_gold: str = ""
    shown_prediction: str = ""

    def tiers(self) -> dict[str, float]:
        return {"em_strict": self.em_strict, "em_normalized": self.em_normalized, "em_lenient": self.em_lenient,
                "char_f1": self.char_f1}


MISSING = ItemScore(0, 0, 0, 0.0)


def char_f1(prediction: str, gold: str) -> float:
    """KorQuAD-style character F1: the harmonic mean of character precision and recall over multisets.
    Two empty strings agree (1.0); one empty string against a non-empty one scores 0."""
    if not prediction or not gold:
        return float(prediction == gold)
    same = sum((Counter(prediction) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(prediction), same / len(gold)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class Normalizer:
    """The step pipeline. `end_markers` adds a tokenizer's EOS/end-of-turn spellings to `ALWAYS_END_MARKERS`;
    `drop_markers` removes `<|name|>` tokens and `|NAME|>` markers on both sides (kept by default: a model that
    was trained to emit `<|sound|>` is wrong when it leaves it out)."""

    end_markers: tuple[str, ...] = ()
    drop_markers: bool = False
    steps: tuple[Step, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        markers = tuple(dict.fromkeys((*ALWAYS_END_MARKERS, *(m for m in self.end_markers if m))))
        object.__setattr__(self, "end_markers", markers)
        steps = [
            Step("reasoning", "em_strict", lambda s: strip_reasoning(s, markers)[0], prediction_only=True),
            Step("end_marker", "em_strict", lambda s: cut_at_end_marker(s, markers), prediction_only=True),
        ]
        if self.drop_markers:
            steps.append(Step("markers", "em_strict", drop_marker_tokens))
        steps += [
            Step("trim", "em_strict", str.strip),
            Step("nfc", "em_normalized", nfc),
            Step("zero_width", "em_normalized", remove_zero_width),
            Step("full_width", "em_normalized", fold_full_width),
            Step("whitespace", "em_normalized", collapse_whitespace),
            Step("lowercase", "em_lenient", str.lower),
            Step("punctuation", "em_lenient", remove_punctuation),
            Step("no_spaces", "em_lenient", remove_whitespace),
        ]
        object.__setattr__(self, "steps", tuple(steps))

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.steps)

    def stages(self, text: str, *, prediction: bool) -> list[str]:
        """The text before any step, then after each step in order."""
        out = [text]
        for step in self.steps:
            out.append(out[-1] if step.prediction_only and not prediction else step.fn(out[-1]))
        return out

    def tier(self, text: str, tier: str, *, prediction: bool = True) -> str:
        """The text as a tier compares it."""
        last = max(i for i, s in enumerate(self.steps) if s.tier == tier)
        return self.stages(text, prediction=prediction)[last + 1]

    def score(self, prediction: str | None, golds: Sequence[str]) -> ItemScore:
        """All tiers, best over the acceptable gold strings; `None` is a missing prediction (0 everywhere)."""
        if prediction is None or not golds:
            return MISSING
        pred_stages = self.stages(prediction, prediction=True)
        reasoning_removed = pred_stages[1] != pred_stages[0]
        last = {t: max(i for i, s in enumerate(self.steps) if s.tier == t) + 1 for t in TIERS}
        match_any = [False] * len(pred_stages)
        best_f1, best_key, best_gold = 0.0, None, golds[0]
        for gold in golds:
            gold_stages = self.stages(gold, prediction=False)
            for i, (p, g) in enumerate(zip(pred_stages, gold_stages)):
                match_any[i] = match_any[i] or p == g
            f1 = char_f1(pred_stages[last["em_lenient"]], gold_stages[last["em_lenient"]])
            best_f1 = max(best_f1, f1)
            # the gold shown in reports: a normalized match if there is one, else the closest by char F1
            key = (gold_stages[last["em_normalized"]] == pred_stages[last["em_normalized"]], f1)
            if best_key is None or key > best_key:
                best_key, best_gold = key, gold
        fixed_by = tuple(self.steps[i - 1].name for i in range(1, len(match_any))
                         if match_any[i] and not match_any[i - 1])
        shown_gold = self.tier(best_gold, "em_normalized", prediction=False)
        return ItemScore(
            em_strict=int(match_any[last["em_strict"]]),
            em_normalized=int(match_any[last["em_normalized"]]),
            em_lenient=int(match_any[last["em_lenient"]]),
            char_f1=round(best_f1, 6),
            reasoning_removed=reasoning_removed,
            fixed_by=fixed_by,
            best_gold=best_gold,
            shown_gold=shown_gold,
            shown_prediction=pred_stages[last["em_normalized"]],
        )
