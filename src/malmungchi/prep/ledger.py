"""The build's document ledger: one record per document found, its fate set where it is decided.

Every document a build sees gets a `DocEntry` (id, source, title, split, status, tokens). A step that drops one
calls `drop(kind, reason)` with a kind from the fixed set `DropKind` and a detail line for people; the report
counts kinds (never re-reads the text), and the manifest keeps both (`kind`, `reason`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum


class DropKind(StrEnum):
    """Why a document is not in the build. Fixed: the report's `dropped_by_reason` counts these."""

    FILE_ERROR = "file_error"  # an error outside any book: the whole file is unusable
    LINT_ERROR = "lint_error"  # the document (book, row) has lint errors; --allow-errors drops it
    EMPTY = "empty"  # renders to no text; a row with an empty prompt or answer
    NO_DIALOGUE = "no_dialogue"  # chat mode: no dialogue with an assistant turn
    DUPLICATE = "duplicate"  # the same text (after normalisation) as an earlier document (--dedup)
    TOO_LONG = "too_long"  # nothing left once max_length was applied


class LostKind(StrEnum):
    """What part of a kept document was lost to max_length (the report's `truncation.by_reason`)."""

    DOCUMENT = "document"  # a whole document (--long-documents drop)
    SEGMENT = "segment"  # one paragraph or turn longer than a row (never cut inside)
    CONVERSATION = "conversation"  # chat mode: a conversation with no place to cut, or --long-documents drop


@dataclass
class DocEntry:
    id: str
    source: str
    title: str | None
    status: str = "kept"  # kept | dropped
    kind: DropKind | None = None  # set when dropped
    reason: str | None = None  # the detail line (for a kept document: what it partly lost)
    split: str | None = None  # "train", "test", … ("train+test" for a document cut across splits in chunk mode)
    tokens: int = 0
    group: str | None = None
    lost_tokens: int | None = None
    mostly_lost: bool = False

    @property
    def kept(self) -> bool:
        return self.status == "kept"

    def drop(self, kind: DropKind, reason: str) -> None:
        self.status, self.kind, self.reason = "dropped", kind, reason

    def manifest(self) -> dict:
        """The manifest's `documents` entry (optional keys only when set)."""
        out = {"id": self.id, "source": self.source, "title": self.title, "split": self.split,
               "status": self.status, "kind": None if self.kind is None else str(self.kind), "reason": self.reason,
               "tokens": self.tokens}
        if self.group is not None:
            out["group"] = self.group
        if self.lost_tokens is not None:
            out["lost_tokens"] = self.lost_tokens
        if self.mostly_lost:
            out["mostly_lost"] = True
        return out


def dropped(id_: str, source: str, title: str | None, kind: DropKind, reason: str) -> DocEntry:
    entry = DocEntry(id_, source, title)
    entry.drop(kind, reason)
    return entry


def counts(entries: list[DocEntry]) -> dict:
    """found / kept / dropped, and dropped documents per kind (sorted by kind)."""
    kinds = Counter(str(e.kind) for e in entries if not e.kept)
    return {"found": len(entries), "kept": sum(e.kept for e in entries),
            "dropped": sum(not e.kept for e in entries), "dropped_by_reason": dict(sorted(kinds.items()))}
