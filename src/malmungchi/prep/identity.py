"""A document's identity, the same under every marker policy, speaker setting and tokenizer.

The source text as parsed, written canonically: every marker in its canonical spelling `|NAME|>` (the `text`
policy), speakers by name, NFC, whitespace runs collapsed. Its sha256 decides the document's split and is its
dedup key, so builds of one corpus with different policies or tokenizers put the same documents in the same
splits, and renaming or moving a folder moves none (the path is not part of it). The canonical text of each
dialogue turn is kept too: eval items store their answer in canonical form beside the policy's rendering, so
runs trained on different policies are scored against the same answers.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from itertools import chain

import numpy as np

from malmungchi.corpus.tree import Document
from malmungchi.prep.policies import Policies
from malmungchi.prep.render import Rendered, TextRenderer, collapse_whitespace
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import Registry

CANONICAL = BuildConfig(default_policy="text", speakers="name")
MARKER = re.compile(r"\|[A-Z][A-Z0-9_]*\|>|<\|[a-z][a-z0-9_]*\|>")  # canonical and special spellings
PARENTHESIZED = re.compile(r"\([^()\n]*\)")  # a cue text `(웃음)`, or the text's own aside


def content_text(text: str) -> str:
    """The content of a canonical text, the same whatever policy wrote it: markers removed, and parenthesized
    spans too (a cue text stays under `strip`, goes under `drop`: removing every aside on both sides keeps the
    comparison fair), NFC, whitespace runs collapsed."""
    out = PARENTHESIZED.sub(" ", MARKER.sub(" ", text))
    return unicodedata.normalize("NFC", " ".join(out.split()))


def any_content(text: str) -> bool:
    """`bool(content_text(text))`, without the normalising and collapsing that cannot empty a text."""
    return bool(PARENTHESIZED.sub(" ", MARKER.sub(" ", text)).strip())


def has_content(canonical: str, probe: int = 1000) -> bool:
    """Whether a canonical text has content (`content_text` not empty). A long text nearly always shows some in
    its first `probe` characters, so only those are looked at first (a marker or aside cut there only errs on
    the side of content)."""
    if PARENTHESIZED.sub(" ", MARKER.sub(" ", canonical[:probe])).strip():
        return True
    return len(canonical) > probe and bool(PARENTHESIZED.sub(" ", MARKER.sub(" ", canonical)).strip())


def text_key(text: str) -> str:
    """sha256 of `text` NFC-normalised with whitespace runs collapsed."""
    return hashlib.sha256(unicodedata.normalize("NFC", collapse_whitespace(text)).encode()).hexdigest()


def is_canonical(cfg: BuildConfig) -> bool:
    """True when `cfg` renders text mode's documents canonically already (nothing to render twice)."""
    return cfg.default_policy == "text" and all(p == "text" for p in cfg.policies.values()) and cfg.speakers == "name"


class Canonical:
    """Renders documents canonically; `stamp` sets a rendering's identity from its document. `cfg`: the build's
    (text mode renderings made with a canonical one are not rendered again; those whose policies only spell
    markers otherwise are respelled, `Respell`)."""

    def __init__(self, registry: Registry, cfg: BuildConfig | None = None):
        self.renderer = TextRenderer(Policies(registry, CANONICAL), "name")
        self.same = cfg is not None and cfg.mode == "text" and is_canonical(cfg)
        self.respell = Respell.of(registry, cfg) if cfg is not None and not self.same else None

    def stamp(self, r: Rendered, doc: Document, source: str) -> None:
        """`r.key` (dedup and split key), `r.canon_answers` (each turn's content, canonical), `r.leaf_sizes`
        (each paragraph's and turn's canonical characters) and `r.has_content` (False: only markers and asides,
        a document under no policy) from `doc`."""
        if self.respell is not None and self.respell.stamp(r):
            return
        c = r if self.same else self.renderer.render(doc, source)
        r.key = text_key(c.text)
        r.has_content = has_content(c.text)
        r.canon_answers = [None] * len(c.turns) if self.same else [c.text[s:e] for _, s, e in c.turns]
        ends = [*c.leaf_cuts[1:], len(c.text)]
        r.leaf_sizes = [max(0, b - a) for a, b in zip(c.leaf_cuts, ends)]


class Respell:
    """Text mode, when every marker renders to a string of its own (`special`, `text`, `replace:"…"`: nothing
    stripped or dropped) and speakers by name: the rendering has the canonical one's layout, only the markers are
    spelled otherwise, so the canonical text is the rendering with each marker respelled `|NAME|>` — half the cost
    of rendering the tree again. It is used only where it is exact: each spelling is found in the text exactly as
    often as the renderer wrote that marker (a spelling also in the source text, or shared by two markers, falls
    back to rendering)."""

    def __init__(self, pattern: re.Pattern, names: dict[str, str]):
        self.pattern = pattern
        self.names = names  # spelling → marker name
        self.canon = {s: f"|{n}|>" for s, n in names.items()}

    @classmethod
    def of(cls, registry: Registry, cfg: BuildConfig) -> Respell | None:
        if cfg.mode != "text" or cfg.speakers != "name":
            return None
        infos = list(Policies(registry, cfg).info.values())
        if not all(i.rendered for i in infos):
            return None
        names = {i.rendered: i.token_name for i in infos if i.rendered != f"|{i.token_name}|>"}
        spellings = [i.rendered for i in infos]
        if len(set(spellings)) != len(spellings) or not names:
            return None
        return cls(re.compile("(" + "|".join(re.escape(s) for s in sorted(names, key=len, reverse=True)) + ")"),
                   names)

    def stamp(self, r: Rendered) -> bool:
        """`Canonical.stamp` by respelling; False (nothing set) where that would not be exact."""
        parts = self.pattern.split(r.text)  # text, spelling, text, …
        spelled = parts[1::2]
        seen = Counter(spelled)
        if any(seen[s] != r.markers.get(n, 0) for s, n in self.names.items()):
            return False
        sizes = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        starts = np.cumsum(sizes)[0:-1:2]  # where each spelling starts in the rendering
        canon = self.canon
        parts[1::2] = [canon[s] for s in spelled]
        c = "".join(parts)
        grow = np.concatenate([[0], np.cumsum(np.fromiter(map(len, parts[1::2]), dtype=np.int64, count=len(spelled))
                                              - sizes[1::2])])

        def at(offsets) -> np.ndarray:  # where an offset of the rendering is in the canonical text
            x = np.asarray(offsets, dtype=np.int64)
            return x + grow[np.searchsorted(starts, x, "left")]

        r.key = text_key(c)
        r.has_content = has_content(c)
        turns = np.fromiter(chain.from_iterable(r.turns), dtype=np.int64, count=3 * len(r.turns))
        begin, end = turns[1::3], turns[2::3]
        # a turn whose content no spelling overlaps reads the same canonically (None: `Rendered.answers`)
        spelled_in = np.searchsorted(starts, end, "left") > np.searchsorted(starts + sizes[1::2], begin, "right")
        r.canon_answers = [None] * len(begin) if not spelled_in.any() else \
            [c[a:b] if o else None for a, b, o in zip(at(begin).tolist(), at(end).tolist(), spelled_in.tolist())]
        cuts = at(r.leaf_cuts)
        r.leaf_sizes = np.maximum(0, np.diff(np.append(cuts, len(c)))).tolist()
        return True
