"""Diagnostics: a rule code at a place in a file, with its severity and an optional fix."""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from malmungchi.corpus.rules import RULES, FixSafety, Severity

__all__ = ["Diagnostic", "Severity", "locate"]


@dataclass(slots=True)
class Diagnostic:
    code: str
    message: str
    path: str
    offset: int = 0  # character offset of the start in the decoded text
    end_offset: int = 0
    line: int = 1  # 1-based, filled in by `locate`
    column: int = 1  # 1-based, in characters
    end_line: int = 1
    end_column: int = 1
    fix: str | None = None  # what the fix does, if the rule has one that applies here

    @property
    def severity(self) -> Severity:
        return RULES[self.code].severity

    @property
    def fix_safety(self) -> FixSafety | None:
        return RULES[self.code].fix if self.fix else None

    def sort_key(self) -> tuple:
        return (self.path, self.line, self.column, self.code)

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "fix": None if not self.fix else {"applicability": self.fix_safety.value, "message": self.fix},
        }


def locate(diagnostics: list[Diagnostic], text: str) -> None:
    """Fill line/column from character offsets, counting newlines once over the text (O(len(text))). A line ends
    at `\n`, `\r\n` or a lone `\r` (old Mac files), as the parser reads lines."""
    if "\r" in text:
        starts = line_starts(text)
        for d in diagnostics:
            d.line, d.column = _position(starts, min(max(d.offset, 0), len(text)))
            d.end_line, d.end_column = _position(starts, min(max(d.end_offset, 0), len(text)))
        return
    points = sorted({d.offset for d in diagnostics} | {d.end_offset for d in diagnostics})
    where: dict[int, tuple[int, int]] = {}
    line, line_start, pos = 1, 0, 0
    for off in points:
        off = min(max(off, 0), len(text))
        line += text.count("\n", pos, off)
        nl = text.rfind("\n", line_start, off)  # not from 0: on a long line that is a scan per diagnostic
        if nl != -1:
            line_start = nl + 1
        pos = off
        where[off] = (line, off - line_start + 1)
    for d in diagnostics:
        d.line, d.column = where[min(max(d.offset, 0), len(text))]
        d.end_line, d.end_column = where[min(max(d.end_offset, 0), len(text))]


def line_starts(text: str) -> list[int]:
    """The offset where every line starts; lines end at `\n`, `\r\n` or a lone `\r`."""
    return [0] + [m.end() for m in (LINE_BREAK if "\r" in text else _LF).finditer(text)]


def _position(starts: list[int], offset: int) -> tuple[int, int]:
    i = bisect_right(starts, offset) - 1
    return i + 1, offset - starts[i] + 1


LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what ends a line, for the parser and for line numbers alike
_LF = re.compile(r"\n")  # the same on text without a CR, faster
