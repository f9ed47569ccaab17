"""`eval compare` when the two results files hold different items: a sample against the full set it was drawn
from, or two files that overlap only partly.

**A sample and its full set** (one file's ids a subset of the other's). If the n sampled items were a simple random
draw from the N items of the full set, scored the same way, the sample's mean would differ from the full set's
by luck alone, with a standard error of

    se = sqrt((1 − n/N) · S² / n)      (S²: the variance of the full set's per-item scores, N − 1 in the divisor)

the finite-population correction (1 − n/N) because the sample is drawn without replacement from those N. The
gap is "inside what sampling explains" when |gap| ≤ z·se (z: the two-sided normal quantile of the confidence);
the p-value is the normal one. Where it is outside, the gap splits in two, which says why:

- `items_gap`: the full run's own scores on the sampled items minus its mean over all (the same run, other
  items): outside z·se, the draw is not representative (easier or harder items: a filter, a stratum over-drawn);
- `runs_gap`: the sample's scores minus the full run's on the same items (the same items, another run): another
  model, checkpoint or settings, or over-fitting to those items.

**A partial overlap** (each file has ids the other lacks). The shared items stay paired (McNemar, the paired
bootstrap); the non-shared ones are independent sets, compared unpaired: B's mean over its own items minus A's
over its own, with Welch's standard error sqrt(s²_A/n_A + s²_B/n_B) and a normal interval and p-value.

Everything here is O(N) in pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import erfc, sqrt
from statistics import NormalDist


def _mean(x: Sequence[float]) -> float:
    return sum(x) / len(x)


def _var(x: Sequence[float]) -> float:
    """Sample variance (divisor n − 1); 0 for fewer than two values."""
    if len(x) < 2:
        return 0.0
    m = _mean(x)
    return sum((v - m) ** 2 for v in x) / (len(x) - 1)


def z_for(confidence: float) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def normal_p(diff: float, se: float) -> float:
    """Two-sided normal p-value of a gap `diff` with standard error `se` (se 0: 1 for no gap, else 0)."""
    if se == 0:
        return 1.0 if diff == 0 else 0.0
    return erfc(abs(diff) / se / sqrt(2))  # 2·(1 − Φ(|z|)), without losing the far tail to 1 − Φ


def fpc_se(full: Sequence[float], n: int) -> float:
    """Standard error of the mean of n items drawn without replacement from the values `full`."""
    big_n = len(full)
    return sqrt(max(0.0, 1 - n / big_n) * _var(full) / n)


@dataclass(frozen=True)
class SampleGap:
    """One metric's sample-vs-full comparison (`sample` and `full_on_sample` are over the sampled ids)."""
    sample: float
    full: float
    full_on_sample: float
    se: float
    z: float

    @property
    def gap(self) -> float:
        return self.sample - self.full

    @property
    def half_range(self) -> float:
        return self.z * self.se

    @property
    def p_value(self) -> float:
        return normal_p(self.gap, self.se)

    @property
    def inside(self) -> bool:
        return abs(self.gap) <= self.half_range

    @property
    def items_gap(self) -> float:
        return self.full_on_sample - self.full

    @property
    def runs_gap(self) -> float:
        return self.sample - self.full_on_sample

    @property
    def items_inside(self) -> bool:
        return abs(self.items_gap) <= self.half_range

    def as_dict(self) -> dict:
        return {"sample": round(self.sample, 6), "full": round(self.full, 6), "gap": round(self.gap, 6),
                "se": round(self.se, 6), "range": round(self.half_range, 6), "p_value": self.p_value,
                "inside": self.inside, "full_on_sample": round(self.full_on_sample, 6),
                "items_gap": round(self.items_gap, 6), "runs_gap": round(self.runs_gap, 6),
                "items_inside": self.items_inside}


def sample_gap(sample: Sequence[float], full: Sequence[float], full_on_sample: Sequence[float],
               confidence: float = 0.95) -> SampleGap:
    """The sample's scores, the full set's (all N), and the full set's on the sampled ids."""
    return SampleGap(_mean(sample), _mean(full), _mean(full_on_sample), fpc_se(full, len(sample)),
                     z_for(confidence))


@dataclass(frozen=True)
class UnpairedGap:
    """One metric on the non-shared items: A's mean over its own, B's over its own."""
    a: float
    b: float
    n_a: int
    n_b: int
    se: float
    z: float

    @property
    def diff(self) -> float:
        return self.b - self.a

    @property
    def p_value(self) -> float:
        return normal_p(self.diff, self.se)

    @property
    def ci(self) -> tuple[float, float]:
        return self.diff - self.z * self.se, self.diff + self.z * self.se

    def as_dict(self) -> dict:
        low, high = self.ci
        return {"a": round(self.a, 6), "b": round(self.b, 6), "n_a": self.n_a, "n_b": self.n_b,
                "diff": round(self.diff, 6), "se": round(self.se, 6), "ci_low": round(low, 6),
                "ci_high": round(high, 6), "p_value": self.p_value}


def unpaired_gap(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> UnpairedGap:
    return UnpairedGap(_mean(a), _mean(b), len(a), len(b), sqrt(_var(a) / len(a) + _var(b) / len(b)),
                       z_for(confidence))
