"""The document tree: the public API between parsing (stage 1) and the build (stage 2).

A corpus file parses into `Document`s (books). A document is a sequence of segments, `Narration`
paragraphs and `Dialogue`s of `Turn`s; paragraphs and turns hold inline parts: `Text`, `Sound` and
`Cue` (any other registered inline marker). Every node has the `Span` it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True, slots=True)
class Span:
    path: str
    start: int  # character offsets into the decoded file
    end: int
    line: int  # 1-based line/column of `start`
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


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


@dataclass(frozen=True, slots=True)
class Dialogue:
    turns: tuple[Turn, ...]
    span: Span


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
    errors: tuple[str, ...] = field(default=())  # codes of error diagnostics inside this book

    @property
    def id(self) -> str:
        return f"{self.path}#{self.index}"
