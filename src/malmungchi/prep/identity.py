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
import unicodedata

import regex

from malmungchi.corpus.tree import Document
from malmungchi.prep.policies import Policies
from malmungchi.prep.render import Rendered, TextRenderer
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import Registry

CANONICAL = BuildConfig(default_policy="text", speakers="name")
MARKER = regex.compile(r"\|[A-Z][A-Z0-9_]*\|>|<\|[a-z][a-z0-9_]*\|>")  # canonical and special spellings
PARENTHESIZED = regex.compile(r"\([^()\n]*\)")  # a cue text `(웃음)`, or the text's own aside


def content_text(text: str) -> str:
    """The content of a canonical text, the same whatever policy wrote it: markers removed, and parenthesized
    spans too (a cue text stays under `strip`, goes under `drop`: removing every aside on both sides keeps the
    comparison fair), NFC, whitespace runs collapsed."""
    out = PARENTHESIZED.sub(" ", MARKER.sub(" ", text))
    return unicodedata.normalize("NFC", " ".join(out.split()))


def text_key(text: str) -> str:
    """sha256 of `text` NFC-normalised with whitespace runs collapsed."""
    return hashlib.sha256(unicodedata.normalize("NFC", " ".join(text.split())).encode()).hexdigest()


def is_canonical(cfg: BuildConfig) -> bool:
    """True when `cfg` renders text mode's documents canonically already (nothing to render twice)."""
    return cfg.default_policy == "text" and all(p == "text" for p in cfg.policies.values()) and cfg.speakers == "name"


class Canonical:
    """Renders documents canonically; `stamp` sets a rendering's identity from its document. `cfg`: the build's
    (text mode renderings made with a canonical one are not rendered again)."""

    def __init__(self, registry: Registry, cfg: BuildConfig | None = None):
        self.renderer = TextRenderer(Policies(registry, CANONICAL), "name")
        self.same = cfg is not None and cfg.mode == "text" and is_canonical(cfg)

    def stamp(self, r: Rendered, doc: Document, source: str) -> None:
        """`r.key` (dedup and split key), `r.canon_answers` (each turn's content, canonical) and `r.leaf_sizes`
        (each paragraph's and turn's canonical characters) from `doc`."""
        c = r if self.same else self.renderer.render(doc, source)
        r.key = text_key(c.text)
        r.canon_answers = [c.text[s:e] for _, s, e in c.turns]
        ends = [*c.leaf_cuts[1:], len(c.text)]
        r.leaf_sizes = [max(0, b - a) for a, b in zip(c.leaf_cuts, ends)]
