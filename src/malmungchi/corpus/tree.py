"""The document tree: the public API between parsing (stage 1) and the build (stage 2).

A corpus file parses into `Document`s (books). A document is a sequence of segments, `Narration`
paragraphs and `Dialogue`s of `Turn`s; paragraphs and turns hold inline parts: `Text`, `Sound` and
`Cue` (any other registered inline marker). Every node has the `Span` it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


class Span:
    """Where a node came from: character offsets into the decoded file and the 1-based line/column of both ends.

    The parser makes spans lazily: it stores the offsets and the file's line index, and `line`, `column`,
    `end_line` and `end_column` are computed on first access (most builds never look at them). Spans compare and
    hash by value and are meant to be immutable.
    """

    __slots__ = ("path", "start", "end", "_pos")

    def __init__(self, path: str, start: int, end: int, line: int | None = None, column: int | None = None,
                 end_line: int | None = None, end_column: int | None = None, *, index=None):
        self.path = path
        self.start = start  # character offsets into the decoded file
        self.end = end
        # either (line, column, end_line, end_column), or an object with .position(offset) → (line, column)
        self._pos = index if index is not None else (line, column, end_line, end_column)

    def _resolve(self) -> tuple:
        pos = self._pos
        if type(pos) is not tuple:
            pos = self._pos = pos.position(self.start) + pos.position(self.end)
        return pos

    @property
    def line(self) -> int:  # 1-based line/column of `start`
        return self._resolve()[0]

    @property
    def column(self) -> int:
        return self._resolve()[1]

    @property
    def end_line(self) -> int:
        return self._resolve()[2]

    @property
    def end_column(self) -> int:
        return self._resolve()[3]

    def _key(self) -> tuple:
        return (self.path, self.start, self.end) + self._resolve()

    def __eq__(self, other) -> bool:
        if other.__class__ is not Span:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        line, column, end_line, end_column = self._resolve()
        return (f"Span(path={self.path!r}, start={self.start}, end={self.end}, line={line}, column={column}, "
                f"end_line={end_line}, end_column={end_column})")

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    def __reduce__(self):
        return (Span, (self.path, self.start, self.end) + self._resolve())


@dataclass(frozen=True, slots=True)
class Text:
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Cue:
    """A registered inline marker other than SOUND; `cue` is the optional `(…)` text right after it."""

    name: str
    cue: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Sound:
    """A `|SOUND|>` cue; `cue` is the optional `(…)` text right after it, e.g. `(흐느끼는 소리)`."""

    cue: str | None
    span: Span
    name: str = "SOUND"


Inline = Union[Text, Sound, Cue]


@dataclass(frozen=True, slots=True)
class Narration:
    parts: tuple[Inline, ...]
    span: Span

    @property
    def plain(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


@dataclass(frozen=True, slots=True)
class Turn:
    speaker: str | None
    parts: tuple[Inline, ...]
    span: Span

    @property
    def plain(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


class Dialogue:
    """A dialogue block: its turns and its span.

    The parser makes a dialogue of plain lines (text only: no cue, no nested block; most dialogues) with its turns
    as `plain` (speaker, text) pairs, the text as the renderer writes it, and builds the `Turn` nodes only when
    `turns` is first read: the build renders from the pairs, and a dialogue corpus has hundreds of thousands of
    turns. Either way it compares and hashes as (turns, span), pickles with its pairs (its turns still unbuilt
    where they were), and is meant to be immutable."""

    __slots__ = ("_turns", "span", "_plain", "_make", "verbatim")

    def __init__(self, turns: tuple[Turn, ...], span: Span):
        self._turns = turns
        self.span = span
        self._plain: list[tuple[str | None, str]] | None = None
        self._make: tuple | None = None
        self.verbatim: tuple[str, int, int] | None = None

    @classmethod
    def lazy(cls, plain: list[tuple[str | None, str]] | None, span: Span, make: tuple,
             verbatim: tuple[str, int, int] | None = None) -> Dialogue:
        """A dialogue of plain lines: `plain` its turns' (speaker, text); `make` is (function, *arguments) that
        returns its `Turn`s. `verbatim` (text, start, end): every line of the dialogue is one turn written
        `이름: text` as the renderer writes it (`corpus.parse.VERBATIM`), `text[start:end]` those lines; `plain`
        is then found from them when first read (None here)."""
        d = cls.__new__(cls)
        d._turns, d.span, d._plain, d._make, d.verbatim = None, span, plain, make, verbatim
        return d

    @property
    def plain(self) -> list[tuple[str | None, str]] | None:
        """(speaker, text) of each turn for a dialogue of plain lines (text alone), else None."""
        if self._plain is None and self.verbatim is not None:
            text, start, end = self.verbatim
            self._plain = [tuple(line.split(": ", 1)) for line in text[start:end].split("\n")]
        return self._plain

    @property
    def turns(self) -> tuple[Turn, ...]:
        if self._turns is None:
            make, *args = self._make
            self._turns, self._make = tuple(make(*args)), None
        return self._turns

    def __eq__(self, other) -> bool:
        if other.__class__ is not Dialogue:
            return NotImplemented
        return self.turns == other.turns and self.span == other.span

    def __hash__(self) -> int:
        return hash((self.turns, self.span))

    def __repr__(self) -> str:
        return f"Dialogue(turns={self.turns!r}, span={self.span!r})"

    def __reduce__(self):  # the pairs travel, and unbuilt turns stay unbuilt (the text and line index travel
        # with the span anyway): a process pool's worker hands back what the build renders from
        if self.plain is None:
            return (Dialogue, (self._turns, self.span))
        return (_unpickled, (self._turns, self.span, self.plain, self._make))


def _unpickled(turns, span, plain, make) -> Dialogue:
    d = Dialogue.lazy(plain, span, make)
    d._turns = turns
    return d


@dataclass(frozen=True, slots=True)
class Block:
    """A registered block other than TITLE and DIALOGUE (e.g. `[markers.CHAPTER] kind="block"`)."""

    name: str
    segments: tuple[Segment, ...]
    span: Span


Segment = Union[Narration, Dialogue, Block]


@dataclass(frozen=True, slots=True)
class Document:
    """One book: its title, its segments, whether it ended with |END_OF_BOOK|>, and its place."""

    path: str
    index: int  # 0-based position of the book in its file
    title: str | None
    segments: tuple[Segment, ...]
    span: Span
    terminated: bool = True

    @property
    def id(self) -> str:
        return f"{self.path}#{self.index}"
