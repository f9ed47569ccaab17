"""`--sample N --seed S [--stratify FIELD]`: a reproducible random subset of the gold items.

A sample is decided by the gold ids and the seed alone, the same on every machine and in every process: each id is
ranked by sha256("SEED:ID") and the N lowest ranks are taken (never Python's `hash`, a set's or a dict's order,
or a random generator whose stream could change between versions). So a bigger sample with the same seed holds
the smaller one, and the ids come back in gold-file order.

With `--stratify FIELD` (a key of the gold records, e.g. a source or category) the N items are shared out over the
field's values in proportion to their size (Hamilton's largest remainders; a tie goes to the value that sorts
first), and each value's share is its lowest-ranked ids. A value too small for one item at that rate gets none.

A sample bigger than the gold set is an error (not silently the whole set); `--sample` with `--limit` is refused
(the first N records and a random N are two different questions).

Cost: one sha256 per gold item and a sort, O(n log n); 13,000 ids take a few milliseconds.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from malmungchi.eval.records import EvalInputError, GoldItem, id_key, read_jsonl, resolve_gold_path


def rank(seed: int, key: str) -> str:
    """The id's place in the seed's order: a hex digest, compared as text."""
    return hashlib.sha256(f"{seed}:{key}".encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Sample:
    size: int
    seed: int
    population: int
    keys: tuple[str, ...]  # id keys, in gold order
    stratify: str | None = None
    strata: dict[str, dict[str, int]] = field(default_factory=dict)  # value → {"population", "sample"}

    @property
    def ids_sha(self) -> str:
        """A hash of the sampled ids (sorted): what the results' fingerprint records."""
        return hashlib.sha256("\n".join(sorted(self.keys)).encode("utf-8")).hexdigest()[:16]

    def identity(self) -> dict:
        return {"size": self.size, "seed": self.seed, "stratify": self.stratify, "ids_sha": self.ids_sha}

    def as_dict(self) -> dict:
        """The summary's `sample` block: how it was drawn, from how many, per stratum, and every id drawn."""
        out = {**self.identity(), "population": self.population}
        if self.stratify:
            out["strata"] = self.strata
        out["ids"] = list(self.keys)
        return out


def allocate(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of n over strata of the given sizes, by largest remainders; deterministic."""
    total = sum(sizes.values())
    exact = {name: n * size / total for name, size in sizes.items()}
    out = {name: int(share) for name, share in exact.items()}
    left = n - sum(out.values())
    by_remainder = sorted(sizes, key=lambda name: (-(exact[name] - out[name]), name))
    for name in by_remainder[:left]:
        out[name] += 1
    return out


def draw(gold: Sequence[GoldItem], size: int, seed: int, strata: Mapping[str, str] | None = None,
         stratify: str | None = None, source: Path | str = "gold") -> Sample:
    """`size` gold items, ranked by sha256(seed:id); `strata` maps each id key to its stratum when stratified."""
    if size > len(gold):
        raise EvalInputError(f"{source}: --sample {size} is more than its {len(gold)} gold records; give at most "
                             f"{len(gold)}, or leave out --sample to score them all")
    groups: dict[str, list[str]] = defaultdict(list)
    for item in gold:
        groups[strata[item.key] if strata is not None else ""].append(item.key)
    counts = allocate({name: len(keys) for name, keys in groups.items()}, size)
    chosen: set[str] = set()
    for name, keys in groups.items():
        chosen.update(sorted(keys, key=lambda k: rank(seed, k))[:counts[name]])
    table = ({name: {"population": len(groups[name]), "sample": counts[name]} for name in sorted(groups)}
             if strata is not None else {})
    return Sample(size, seed, len(gold), tuple(g.key for g in gold if g.key in chosen), stratify, table)


def _label(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def read_strata(path: str | Path, field_name: str) -> dict[str, str]:
    """Id key → the record's `field_name` (as text) for every gold record; a record without it is an error."""
    p = resolve_gold_path(path)
    out = {}
    for line, obj in read_jsonl(p):
        if field_name not in obj:
            raise EvalInputError(f'{p}:{line}: no "{field_name}" field for --stratify {field_name}; give every '
                                 "gold record one, or stratify by another field")
        out[id_key(obj, p, line)] = _label(obj[field_name])
    return out


def check_options(size: int | None, stratify: str | None, limit: int | None = None) -> None:
    if stratify is not None and size is None:
        raise EvalInputError(f"--stratify {stratify}: stratifies a --sample; give --sample N too")
    if size is not None and limit is not None:
        raise EvalInputError("--sample and --limit: give one (--limit takes the first N gold records, --sample a "
                             "random N)")


def sample_gold(gold: Sequence[GoldItem], path: str | Path, size: int | None, seed: int,
                stratify: str | None = None) -> tuple[list[GoldItem], Sample | None]:
    """The gold items a command works on and the sample they are (None: all of them)."""
    check_options(size, stratify)
    if size is None:
        return list(gold), None
    strata = read_strata(path, stratify) if stratify else None
    sample = draw(gold, size, seed, strata, stratify, resolve_gold_path(path))
    keep = set(sample.keys)
    return [g for g in gold if g.key in keep], sample
