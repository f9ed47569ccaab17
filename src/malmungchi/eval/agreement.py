"""The agreement of two binary raters for `eval judge` (a 2×2 table, raw agreement, Cohen's kappa). Pure Python:
a few hundred items need no numpy. (The judge accuracy's Wilson interval is `eval.intervals.wilson`.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    """Rater A (the judge) against rater B (an exact-match tier), item by item."""
    both: int  # A yes, B yes
    a_only: int  # A yes, B no
    b_only: int  # A no, B yes
    neither: int  # A no, B no

    @property
    def n(self) -> int:
        return self.both + self.a_only + self.b_only + self.neither

    @property
    def observed(self) -> float | None:
        return (self.both + self.neither) / self.n if self.n else None

    @property
    def kappa(self) -> float | None:
        """Cohen's kappa: (p_o − p_e) / (1 − p_e). None when chance agreement is total (both raters gave one
        answer to everything), where kappa is undefined."""
        n = self.n
        if not n:
            return None
        a_yes, b_yes = (self.both + self.a_only) / n, (self.both + self.b_only) / n
        expected = a_yes * b_yes + (1 - a_yes) * (1 - b_yes)
        if expected >= 1:
            return None
        return (self.observed - expected) / (1 - expected)

    def as_dict(self) -> dict:
        kappa, observed = self.kappa, self.observed
        return {"judge_yes_em_yes": self.both, "judge_yes_em_no": self.a_only, "judge_no_em_yes": self.b_only,
                "judge_no_em_no": self.neither, "agreement": None if observed is None else round(observed, 6),
                "kappa": None if kappa is None else round(kappa, 6)}


def agreement(a: Sequence[bool], b: Sequence[bool]) -> Agreement:
    pairs = list(zip(a, b, strict=True))
    return Agreement(sum(x and y for x, y in pairs), sum(x and not y for x, y in pairs),
                     sum(y and not x for x, y in pairs), sum(not x and not y for x, y in pairs))
