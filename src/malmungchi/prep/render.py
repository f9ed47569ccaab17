"""Render a document into training text (text mode), remembering where segments and turns start.

The text is what the model sees; `cuts` are the character offsets where a long document may be cut (the start
of every paragraph and turn, never inside one) and `turns` locate each dialogue turn for the eval set.
Separators: a blank line between segments, a line break between turns and around dialogue markers.
"""

from __future__ import annotations

import hashlib
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from malmungchi.corpus.tree import Block, Cue, Dialogue, Document, Inline, Narration, Sound, Text
from malmungchi.prep.policies import Policies, speaker_token

OTHER, HANGUL, JAMO, FULLWIDTH, SPACE = range(5)  # what `measure` counts, by UTF-16 code unit


@dataclass
class Rendered:
    """One training document (text mode) or conversation (chat mode) before tokenization."""

    id: str
    doc_id: str  # the book it came from (split unit in document mode)
    source: str
    title: str | None
    text: str
    cuts: list[int] = field(default_factory=list)  # char offsets where the text may be cut
    turns: list[tuple[int, int, int]] = field(default_factory=list)  # (turn start, content start, content end);
    # flat after spill()
    loss: list[tuple[int, int]] | None = None  # chat mode: char spans that carry the loss
    messages: list[dict] | None = None  # chat mode
    meta: list | None = field(default=None, repr=False)  # chat mode, per message: (key from the source, canonical
    # content) for dialogue messages, else None (`prep.chat`)
    speakers: list[dict[str, str]] = field(default_factory=list)  # per dialogue: speaker token → name
    markers: Counter = field(default_factory=Counter)  # marker occurrences by literal name
    cues: Counter = field(default_factory=Counter)  # (inline marker, cue text) occurrences: what each SOUND was
    hangul: int = 0
    eojeol: int = 0
    nfd: int = 0  # conjoining jamo code points (decomposed Hangul)
    fullwidth: int = 0
    not_nfc: bool = False
    max_speakers: int = 0
    key: str | None = field(default=None, repr=False, compare=False)  # dedup_key(): the document's identity
    # (`prep.identity`, set by the build) or, when not set, the rendered text's
    canon_answers: list[str | None] = field(default_factory=list, repr=False)  # each turn's content, canonical
    # form; None where that is the rendering's own content (no marker spelled otherwise in it): `answers()`
    leaf_cuts: list[int] = field(default_factory=list, repr=False)  # per paragraph and turn, in tree order (also
    # those that render to nothing): where a cut before it goes (before the block marker that opens it)
    leaf_sizes: list[int] = field(default_factory=list, repr=False)  # per paragraph and turn: its characters in
    # the canonical rendering (`prep.identity`), for cutting split units the same way under every policy
    has_content: bool = field(default=True, repr=False)  # False: only markers and asides (`prep.identity`)
    unit: str | None = None  # the split unit it belongs to when that is not its document (`prep.pieces`)
    gaps: list[int] = field(default_factory=list)  # where a segment too long for any row was taken out: no
    # sequence and no eval prompt spans a gap (prep.encode)
    stored: tuple | None = field(default=None, repr=False, compare=False)  # (TextStore, offset, bytes) once spilled

    def spill(self, store) -> None:
        """Move the text into `store` (a `prep.spill.TextStore`) once it is encoded; `full_text()` reads it back.
        Cut offsets and turns go into compact arrays (8 bytes an offset instead of a Python int's 36; `turns`
        becomes flat: start, content start, content end, …)."""
        self.dedup_key()
        self.stored = (store, *store.put(self.text))
        self.text = ""
        self.cuts = array("q", self.cuts)
        self.turns = array("q", [x for turn in self.turns for x in turn])

    def full_text(self) -> str:
        """The text, also after `spill`."""
        return self.text if self.stored is None else self.stored[0].get(*self.stored[1:])

    def answers(self) -> list[str]:
        """Each turn's content in canonical form: `canon_answers` with its None entries read from the text (while
        the text and turns are those it was stamped with; `prep.encode` and `prep.pieces` resolve them before
        they change either)."""
        if None not in self.canon_answers:
            return list(self.canon_answers)
        text = self.full_text()
        flat = self.turns if isinstance(self.turns, array) else [x for turn in self.turns for x in turn]
        return [text[flat[3 * n + 1]:flat[3 * n + 2]] if a is None else a for n, a in enumerate(self.canon_answers)]

    def dedup_key(self) -> str:
        """The identity set by `prep.identity`, else sha256 of the text with whitespace runs collapsed and
        NFC-normalised (computed once)."""
        if self.key is None:
            norm = unicodedata.normalize("NFC", collapse_whitespace(self.text))
            self.key = hashlib.sha256(norm.encode()).hexdigest()
        return self.key


def collapse_whitespace(text: str) -> str:
    """`" ".join(text.split())`, several times faster on text whose only whitespace is spaces and line feeds
    (every rendering without tabs, CRs or wide spaces): no list of words, a few passes of `replace`. Every
    whitespace character but the space is unprintable, so a printable text with its line feeds made spaces has
    only spaces to collapse."""
    out = text.replace("\n", " ")
    if not out.isprintable():
        return " ".join(text.split())
    while "  " in out:
        out = out.replace("  ", " ")
    return out.strip(" ")


class _Out:
    """A string builder that knows its length (for offsets) and joins inline parts without double spaces."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n = 0

    def add(self, s: str) -> None:
        if s:
            self.parts.append(s)
            self.n += len(s)

    def ends_with_space(self) -> bool:
        return bool(self.parts) and self.parts[-1][-1:] in (" ", "\t")

    def text(self) -> str:
        return "".join(self.parts)


class TextRenderer:
    def __init__(self, policies: Policies, speakers: str):
        self.p = policies
        self.speakers = speakers
        self._ends: dict[str, tuple[bool, str, str]] = {}  # block name → `_block_ends`

    def render(self, doc: Document, source: str) -> Rendered:
        out = _Out()
        r = Rendered(doc.id, doc.id, source, doc.title, "")
        self._r = r
        self._speaker_ids: dict[str, str] = {}
        self._opening: int | None = None  # where the block being opened began (its first leaf's cut)
        first = True
        if doc.title is not None:
            r.markers["START_OF_TITLE"] += 1
            r.markers["END_OF_TITLE"] += 1
            if not self.p.block_dropped("TITLE"):
                out.add(self.p.marker("START_OF_TITLE") + doc.title + self.p.marker("END_OF_TITLE"))
                first = False
        segments, i = doc.segments, 0
        while i < len(segments):
            seg = segments[i]
            if seg.__class__ is Dialogue and seg.verbatim is not None and self.speakers == "name":
                j = i + 1
                while j < len(segments) and segments[j].__class__ is Dialogue and segments[j].verbatim is not None:
                    j += 1
                first = self._verbatim(segments[i:j], out, first)
                i = j
                continue
            first = self._segment(seg, out, first)
            i += 1
        if doc.terminated:
            r.markers["END_OF_BOOK"] += 1
            end = self.p.marker("END_OF_BOOK")
            if end:
                self._add_after(out, first, end)
        r.text = out.text()
        measure(r)
        return r

    def _add_after(self, out: _Out, first: bool, s: str, sep: str = "\n\n") -> None:
        """Add `s` after `sep`, unless nothing was added yet (`first`); a long document may be cut before `s`."""
        if not first:
            self._r.cuts.append(out.n + len(sep))
            s = sep + s
        out.add(s)

    def _leaf(self, at: int) -> None:
        """A paragraph or turn starts at `at` (or at the start of the block whose marker opened it)."""
        if self._opening is not None:
            at, self._opening = self._opening, None
        self._r.leaf_cuts.append(at)

    def _open(self, out: _Out, first: bool) -> None:
        """A block marker is about to be added: its first leaf's cut goes before it (the outermost block's)."""
        if self._opening is None:
            self._opening = out.n + (0 if first else 2)

    def _block_ends(self, name: str) -> tuple[bool, str, str]:
        """Whether block `name` is dropped, and what its start and end markers render as (looked up once: a
        dialogue corpus has tens of thousands of blocks)."""
        ends = self._ends.get(name)
        if ends is None:
            ends = self._ends[name] = (self.p.block_dropped(name), self.p.marker(f"START_OF_{name}"),
                                       self.p.marker(f"END_OF_{name}"))
        return ends

    def _segment(self, seg, out: _Out, first: bool) -> bool:
        """Add one segment after those before it (`first`: nothing was added yet); whether still nothing was."""
        if isinstance(seg, Narration):
            body = self.inline(seg.parts)
            self._leaf(out.n + (0 if first or not body else 2))
            if body:
                self._add_after(out, first, body)
                return False
            return first
        if isinstance(seg, Dialogue):
            return self._dialogue(seg, out, first)
        if isinstance(seg, Block):
            return self._block(seg, out, first)
        return first

    def _dialogue(self, seg: Dialogue, out: _Out, first: bool) -> bool:
        # `_open`, `_add_after` and `_turn` for every turn, written out: a dialogue corpus has hundreds of thousands
        r, parts, names, tokens = self._r, out.parts, self.speakers == "name", self.speakers == "token"
        markers = r.markers
        markers["START_OF_DIALOGUE"] += 1
        markers["END_OF_DIALOGUE"] += 1
        dropped, open_, close = self._block_ends("DIALOGUE")
        if dropped:
            return first
        if tokens:
            self._speaker_ids = {}
            r.speakers.append({})
        cuts, turns, leaves = r.cuts, r.turns, r.leaf_cuts
        if open_:
            if self._opening is None:
                self._opening = out.n + (0 if first else 2)
            if not first:
                cuts.append(out.n + 2)
                open_ = "\n\n" + open_
            parts.append(open_)
            out.n += len(open_)
            first = False
            sep = "\n"  # before the first turn; "\n" between turns
        else:
            sep = "\n\n"
        pairs = seg.plain  # (speaker, text) of each turn: the parser's for a dialogue of text alone
        if pairs is None:
            pairs = [(t.speaker, self.inline(t.parts)) for t in seg.turns]
        n, opening = out.n, self._opening
        for speaker, body in pairs:
            prefix = "" if speaker is None else f"{speaker}: " if names else self._speaker_prefix(speaker)
            line = prefix + body
            if opening is not None:
                leaves.append(opening)
                opening = None
            else:
                leaves.append(n if first else n + len(sep))
            if not first:
                cuts.append(n + len(sep))
                line = sep + line
            if line:
                parts.append(line)
                n += len(line)
            start = n - len(body)
            turns.append((start - len(prefix), start, n))
            first, sep = False, "\n"
        out.n, self._opening = n, opening
        if close:
            out.add(close if first else "\n" + close)
            first = False
        if tokens:  # (only `<|speaker_N|>` prefixes number the speakers)
            r.max_speakers = max(r.max_speakers, len(self._speaker_ids))
        return first

    def _verbatim(self, run: tuple[Dialogue, ...], out: _Out, first: bool) -> bool:
        """`_dialogue` for a run of dialogues in a row whose lines are their turns as written (`Dialogue.verbatim`),
        speakers by name: each dialogue's lines copied at once."""
        r = self._r
        dropped, open_, close = self._block_ends("DIALOGUE")
        if dropped or not open_ or not close:  # (no marker to open or close them: the general case)
            for seg in run:
                first = self._dialogue(seg, out, first)
            return first
        r.markers["START_OF_DIALOGUE"] += len(run)
        r.markers["END_OF_DIALOGUE"] += len(run)
        cuts, turns, leaves, parts = r.cuts, r.turns, r.leaf_cuts, out.parts
        n, opening = out.n, self._opening
        head, tail = open_ + "\n", "\n" + close
        for seg in run:
            text, start, end = seg.verbatim
            body = text[start:end]
            if first:
                if opening is None:
                    opening = n
                parts.append(head + body + tail)
                s = n + len(head)
                first = False
            else:
                if opening is None:
                    opening = n + 2
                cuts.append(n + 2)
                parts.append("\n\n" + head + body + tail)
                s = n + 2 + len(head)
            leaves.append(opening)
            opening = None
            for k, line in enumerate(body.split("\n")):
                if k:
                    leaves.append(s)
                cuts.append(s)
                e = s + len(line)
                turns.append((s, s + line.index(": ") + 2, e))
                s = e + 1
            n = s - 1 + len(tail)
        out.n, self._opening = n, None
        return False

    def _block(self, seg: Block, out: _Out, first: bool) -> bool:
        self._r.markers[f"START_OF_{seg.name}"] += 1
        self._r.markers[f"END_OF_{seg.name}"] += 1
        dropped, open_, close = self._block_ends(seg.name)
        if dropped:
            return first
        if open_:
            self._open(out, first)
            self._add_after(out, first, open_)
            first = False
        inner_first = first
        for s in seg.segments:
            inner_first = self._segment(s, out, inner_first)
        if close:
            out.add(close if inner_first else "\n\n" + close)
            inner_first = False
        return inner_first

    def _speaker_prefix(self, speaker: str | None) -> str:
        """`이름: ` or the dialogue's `<|speaker_N|>` for the speaker (numbered in order of appearance), or ""."""
        if speaker is None or self.speakers not in ("name", "token"):
            return ""
        if self.speakers == "name":
            return f"{speaker}: "
        tok = self._speaker_ids.get(speaker)
        if tok is None:
            tok = speaker_token(len(self._speaker_ids) + 1)
            self._speaker_ids[speaker] = tok
            self._r.speakers[-1][tok] = speaker
        return tok

    def inline(self, parts: tuple[Inline, ...]) -> str:
        if len(parts) == 1 and parts[0].__class__ is Text:  # most paragraphs and turns: nothing to join
            return parts[0].text.strip()
        out = _Out()
        strip_next = False
        for part in parts:
            if isinstance(part, Text):
                t = part.text
                if strip_next and out.ends_with_space() and t[:1] in (" ", "\t"):
                    t = t[1:]
                out.add(t)
                strip_next = False
            elif isinstance(part, (Sound, Cue)):
                name = part.name
                self._r.markers[name] += 1
                self._r.cues[(name, part.cue)] += 1
                s = self.render_inline(name, part.cue)
                out.add(s)
                strip_next = not s
        return out.text().strip()

    def render_inline(self, name: str, cue: str | None) -> str:
        policy = self.p.policy(name)
        if policy == "drop":
            return ""
        cue_text = f"({cue})" if cue is not None else ""
        return self.p.marker(name) + cue_text


@lru_cache(maxsize=1)
def _unit_classes() -> np.ndarray:
    """The `measure` class of every UTF-16 code unit. Every character `str.split` splits at is in the BMP, and
    the halves of a surrogate pair are in none of these ranges, so counting code units counts characters."""
    table = np.full(0x10000, OTHER, dtype=np.uint8)
    table[0xAC00:0xD7A4] = HANGUL  # precomposed syllables
    table[0x1100:0x1200] = JAMO  # conjoining jamo: decomposed Hangul
    table[0xFF01:0xFF5F] = FULLWIDTH
    table[[cp for cp in range(0x10000) if chr(cp).isspace()]] = SPACE
    return table


def measure(r: Rendered) -> None:
    """Cheap per-document text figures for the report (Hangul syllables, eojeol, NFD jamo, full-width), counted
    with numpy over the text's code units: a regex or `split` pass per figure cost more than rendering."""
    t = r.text
    classes = _unit_classes()[np.frombuffer(t.encode("utf-16-le", "surrogatepass"), dtype=np.uint16)]
    counts = np.bincount(classes, minlength=SPACE + 1)
    r.hangul, r.nfd, r.fullwidth = int(counts[HANGUL]), int(counts[JAMO]), int(counts[FULLWIDTH])
    r.eojeol = _words(classes == SPACE)
    r.not_nfc = not unicodedata.is_normalized("NFC", t)


def _words(space: np.ndarray) -> int:
    """`len(text.split())` from the text's whitespace mask: the number of runs of other characters."""
    if not space.size:
        return 0
    return int(not space[0]) + int(np.count_nonzero(space[:-1] & ~space[1:]))
