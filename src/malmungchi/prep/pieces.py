"""The chunk split unit: a document cut into pieces on its parsed tree, the same pieces under every policy and
tokenizer.

A small corpus whose whole documents cannot fill every split is split by pieces instead: consecutive paragraphs
and turns ("leaves", in tree order) filled greedily up to UNIT_CHARS characters of their canonical rendering
(`Rendered.leaf_sizes`), a leaf never cut. Every rendering records where a cut before each leaf goes
(`Rendered.leaf_cuts`, before the block marker that opens it), so a piece boundary found on the canonical sizes
lands on the same leaf in any rendering. Piece k of document D is the text mode document `D@uK`: its own
rendering (text, cuts, turns, canonical answers), encoded, packed and evaluated like a document; its split
comes from sha256(seed, D's identity, k). Linear in the leaves.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from malmungchi.prep.render import Rendered, measure

UNIT_CHARS = 1500  # about a page of Korean prose: a ten-book corpus gives dozens of units


def boundaries(sizes: list[int], budget: int = UNIT_CHARS) -> list[int]:
    """The leaves (by index, after 0) where a new piece starts."""
    out, used = [], 0
    for j, n in enumerate(sizes):
        if used and used + n > budget:
            out.append(j)
            used = 0
        used += n
    return out


def cut(r: Rendered, budget: int = UNIT_CHARS) -> list[Rendered] | None:
    """`r` as its pieces (empty ones left out), or None when it is one piece or its leaves do not line up with
    the canonical rendering's (a dropped dialogue block): then the document is one unit."""
    if not r.leaf_sizes or len(r.leaf_sizes) != len(r.leaf_cuts):
        return None
    starts = boundaries(r.leaf_sizes, budget)
    if not starts:
        return None
    text = r.full_text()
    offsets = [0, *(r.leaf_cuts[j] for j in starts), len(text)]
    turns = np.asarray(r.turns, dtype=np.int64).reshape(-1, 3)
    cuts = np.asarray(r.cuts, dtype=np.int64)
    gaps = np.asarray(r.gaps, dtype=np.int64)
    answers = r.answers()
    pieces = []
    for k, (a, b) in enumerate(zip(offsets, offsets[1:])):
        body = text[a:b]
        lead = len(body) - len(body.lstrip())
        body = body.strip()
        if not body:
            continue
        a += lead
        inside = (turns[:, 0] >= a) & (turns[:, 0] < b)
        piece = replace(r, id=f"{r.id}@u{k}", text=body, unit=f"{r.key}@u{k}", stored=None, key=f"{r.key}@u{k}",
                        cuts=[int(c - a) for c in cuts if a < c < a + len(body)],
                        turns=[tuple(int(x - a) for x in t) for t in turns[inside]],
                        canon_answers=[answers[i] for i in np.nonzero(inside)[0] if i < len(answers)],
                        gaps=[int(g - a) for g in gaps if a < g < a + len(body)],
                        markers=r.markers if not pieces else type(r.markers)(),
                        cues=r.cues if not pieces else type(r.cues)(),
                        speakers=r.speakers if not pieces else [], leaf_cuts=[], leaf_sizes=[])
        measure(piece)
        pieces.append(piece)
    return pieces
