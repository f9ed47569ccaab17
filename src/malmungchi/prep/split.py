"""Deterministic, stable train/validation/test assignment.

Each unit (a book, or a chunk when the corpus is too small for whole books to fill every split) gets a number in
[0, 1) and falls into the split whose ratio interval holds it. A book's number is sha256(seed, its identity): the
source text as parsed, markers in canonical spelling (`prep.identity`), never the rendered text, the tokenizer or
the path, so builds with any marker policy or tokenizer split alike and renaming a folder moves nothing. (A
group's identity is its members' in id order.) In chunk mode the units are pieces of books cut on the parsed
tree (`prep.pieces`) and conversations, each numbered from its book's identity and its place in the book: the same
under every policy and tokenizer too. A unit's split
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


def document_units(doc_content: dict[str, str], groups: dict[str, str]) -> dict[str, str]:
    """Document mode's units: unit key (a document id, or "group:" + its group) → identity."""
    members: dict[str, list[str]] = {}
    for doc_id in sorted(doc_content):
        if doc_id in groups:
            members.setdefault(groups[doc_id], []).append(doc_id)
    units = {d: c for d, c in doc_content.items() if d not in groups}
    units.update({"group:" + g: "\0".join(doc_content[d] for d in ids) for g, ids in members.items()})
    return units


def choose_unit(doc_content: dict[str, str], ratios: SplitRatios, seed: int, unit: str,
                groups: dict[str, str] | None = None) -> tuple[str, str | None]:
    """"document" or "chunk" for `unit` (document | chunk | auto), decided from the documents' identities alone
    (before anything is encoded), and the note to print."""
    if unit == "chunk":
        return "chunk", "split unit: chunk (as asked)"
    spans = intervals(ratios)
    got = {split_of(unit_number(seed, "", c), spans) for c in document_units(doc_content, groups or {}).values()}
    empty = [s for s in SPLITS if getattr(ratios, s) > 0 and s not in got]
    if unit == "document" or not empty:
        return "document", None
    return "chunk", (f"split unit: chunk (whole documents left {', '.join(empty)} empty; the pieces of one book "
                     "may land in different splits)")


def assign(seqs: list[Seq], ratios: SplitRatios, seed: int, unit: str, doc_content: dict[str, str],
           groups: dict[str, str] | None = None) -> Assignment:
    """`unit`: document | chunk | auto (document, else chunk when a requested split would be empty).
    `doc_content`: each document's identity. `groups` maps a document id to its group (the book its rows belong
    to): in document mode a group is one unit, its identity the members' in id order. In chunk mode a sequence's
    unit is its rendering's `unit` (a piece of a book, `prep.pieces`; a conversation) or else its document."""
    spans = intervals(ratios)
    wanted = [s for s in SPLITS if getattr(ratios, s) > 0]
    groups = groups or {}
    decided, note = choose_unit(doc_content, ratios, seed, unit, groups)
    if decided == "document":
        units = document_units(doc_content, groups)

        def key(q):
            g = groups.get(q.doc_id)
            return q.doc_id if g is None else "group:" + g

        def content(q):
            return units[key(q)]

        a = _by(seqs, spans, seed, key, content, "document", named=False)
        return _rescue(a, seqs, spans, seed, wanted, key, content, named=False)

    def chunk_key(q) -> str:
        return q.src.unit or q.doc_id

    def chunk_content(q) -> str:  # a piece's identity: its book's and its place in it (no path, no tokens)
        return q.src.unit or doc_content.get(q.doc_id, q.doc_id)

    a = _by(seqs, spans, seed, chunk_key, chunk_content, "chunk", named=False)
    a.notes.append(note)
    return _rescue(a, seqs, spans, seed, wanted, chunk_key, chunk_content, named=False)


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
