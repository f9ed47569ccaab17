"""Small statistics for `eval judge`: a Wilson score interval for a proportion, and the agreement of two binary
raters (a 2×2 table, raw agreement, Cohen's kappa). Pure Python: a few hundred items need no numpy."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for successes/n (None when n is 0). Unlike the normal approximation it stays
    inside [0, 1] and is not degenerate at 0% or 100%, which a small judged sample often is."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


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
