"""Deterministic, stable train/validation/test assignment.

Each unit (a book, or a chunk when the corpus is too small for whole books to fill every split) gets a number in
[0, 1) and falls into the split whose ratio interval holds it. A book's number is sha256(seed, its identity): the
source text as parsed, markers in canonical spelling (`prep.identity`), never the rendered text, the tokenizer or
the path, so builds with any marker policy or tokenizer split alike and renaming a folder moves nothing. (A
group's identity is its members' in id order.) A chunk's is sha256(seed, its document's identity, its place in
the document, its token ids): also free of the path, but it depends on the tokenizer and policy, since chunks are
cut by tokens; use whole documents (`split_unit = "document"`) to compare policies or tokenizers. A unit's split
depends on nothing but itself, so adding a file never moves an old unit, and a book's chunks all follow the book
in document mode. Only when a requested split is still empty is the unit whose number lies closest to
that split's interval moved there (reported), so a ten-book corpus still has something to validate and test on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from malmungchi.contracts.build import SPLITS
from malmungchi.prep.encode import Seq
from malmungchi.schemas.config import SplitRatios



def unit_number(seed: int, unit_id: str, content: str) -> float:
    h = hashlib.sha256(f"{seed}\0{unit_id}\0{content}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def intervals(ratios: SplitRatios) -> dict[str, tuple[float, float]]:
    out, lo = {}, 0.0
    for name in SPLITS:
        hi = lo + getattr(ratios, name)
        out[name] = (lo, 1.0 if name == "test" else hi)
        lo = hi
    return out


def split_of(u: float, spans: dict[str, tuple[float, float]]) -> str:
    for name in SPLITS:
        lo, hi = spans[name]
        if lo <= u < hi:
            return name
    return "test"


@dataclass
class Assignment:
    unit: str  # document | chunk
    by_seq: dict[str, str] = field(default_factory=dict)  # seq id → split
    moved: list[str] = field(default_factory=list)  # units moved into an otherwise empty split
    notes: list[str] = field(default_factory=list)


def assign(seqs: list[Seq], ratios: SplitRatios, seed: int, unit: str, doc_content: dict[str, str],
           groups: dict[str, str] | None = None) -> Assignment:
    """`unit`: document | chunk | auto (document, else chunk when a requested split would be empty).
    `doc_content`: each document's identity. `groups` maps a document id to its group (the book its rows belong
    to): in document mode a group is one unit, its identity the members' in id order."""
    spans = intervals(ratios)
    wanted = [s for s in SPLITS if getattr(ratios, s) > 0]
    if unit in ("document", "auto"):
        groups = groups or {}
        members: dict[str, list[str]] = {}
        for doc_id in sorted(doc_content):
            if doc_id in groups:
                members.setdefault(groups[doc_id], []).append(doc_id)
        group_content = {g: "\0".join(doc_content[d] for d in ids) for g, ids in members.items()}

        def key(q):
            g = groups.get(q.doc_id)
            return q.doc_id if g is None else "group:" + g

        def content(q):
            g = groups.get(q.doc_id)
            return doc_content[q.doc_id] if g is None else group_content[g]

        a = _by(seqs, spans, seed, key, content, "document", named=False)
        empty = [s for s in wanted if s not in set(a.by_seq.values())]
        if unit == "document" or not empty:
            return _rescue(a, seqs, spans, seed, wanted, key, content, named=False)
        note = (f"split unit: chunk (whole documents left {', '.join(empty)} empty; chunks of one book may land "
                "in different splits)")
    else:
        note = "split unit: chunk (as asked)"
    def chunk(q) -> str:  # the document's identity, where the chunk lies in it, its tokens: no path
        return f"{doc_content.get(q.doc_id, '')}\0{q.id[len(q.doc_id):]}\0{hashlib.sha256(q.ids.tobytes()).hexdigest()}"

    a = _by(seqs, spans, seed, lambda q: q.id, chunk, "chunk", named=False)
    a.notes.append(note)
    return _rescue(a, seqs, spans, seed, wanted, lambda q: q.id, chunk, named=False)


def _by(seqs, spans, seed, key, content, unit, named: bool = True) -> Assignment:
    """Each sequence's split from its unit's number; `named`: the unit's id is hashed too (chunks)."""
    a = Assignment(unit)
    cache: dict[str, str] = {}
    for q in seqs:
        k = key(q)
        if k not in cache:
            cache[k] = split_of(unit_number(seed, k if named else "", content(q)), spans)
        a.by_seq[q.id] = cache[k]
    return a


def _rescue(a: Assignment, seqs, spans, seed, wanted, key, content, named: bool = True) -> Assignment:
    units: dict[str, float] = {}
    for q in seqs:
        k = key(q)
        if k not in units:
            units[k] = unit_number(seed, k if named else "", content(q))
    if len(units) < len(wanted):
        a.notes.append(f"only {len(units)} {a.unit}s for {len(wanted)} splits: some splits stay empty")
        return a
    split_of_unit = {k: split_of(u, spans) for k, u in units.items()}
    for name in wanted:
        counts = {s: sum(1 for v in split_of_unit.values() if v == s) for s in SPLITS}
        if counts[name]:
            continue
        lo, hi = spans[name]
        donors = [k for k, s in split_of_unit.items() if counts[s] > 1]
        if not donors:
            continue
        best = min(donors, key=lambda k: (min(abs(units[k] - lo), abs(units[k] - hi)), k))
        a.moved.append(f"{best} → {name}")
        split_of_unit[best] = name
    if a.moved:
        a.notes.append(f"moved {len(a.moved)} {a.unit}(s) into otherwise empty splits: {'; '.join(a.moved)}")
        for q in seqs:
            a.by_seq[q.id] = split_of_unit[key(q)]
    return a
