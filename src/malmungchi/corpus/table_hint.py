"""What to pass for a .csv/.tsv read without column options that has no `text` column: the options that look
right from its header (`Q`/`A` → --prompt-column Q --answer-column A), or, when the header row reads like data
(a transcript without one: `3.590, 8.840, speaker#A, 네 …`), the columns by number with --no-header. Only a
suggestion in the error line (and in lint's D006, `check_columns`): the build never guesses."""

from __future__ import annotations

import csv
import io
import shlex
from dataclasses import dataclass

import regex

from malmungchi.corpus.datafiles import canonical_role, table_delimiter
from malmungchi.corpus.diagnostics import Diagnostic

# most likely first: where two columns match (Alpaca's instruction and input), the earlier name is the prompt
PROMPT = ("prompt", "instruction", "question", "q", "query", "input", "질문", "입력", "요청")
ANSWER = ("answer", "response", "a", "output", "reply", "completion", "답변", "대답", "응답", "출력", "답")
SPEAKER = ("speaker", "spk", "name", "who", "character", "화자", "이름", "인물", "발화자")
TEXT = ("text", "utterance", "sentence", "transcript", "content", "line", "발화", "내용", "문장", "대사")
NUMBER = regex.compile(r"[+-]?\d+([.,:]\d+)*")
# words, then a sentence's last mark after a word of three letters or of Hangul (not an abbreviation's `No.`)
SENTENCE_END = regex.compile(r"\S\s+.*(\p{L}{3}|\p{Hangul})[.?!…。]\s*$")
PLAIN_ARG = regex.compile(r"[\w.#@%+=:,/-]+")  # what a shell takes as one word unquoted
SPEAKER_CELL = regex.compile(r"(?i)(speaker|spk|화자)\W*\w{0,3}|[A-Z]|\w{1,12}#\w+")


def _arg(column: str) -> str:
    return column if PLAIN_ARG.fullmatch(column) else shlex.quote(column)


def _named(columns: list[str], names: tuple[str, ...], role: str | None = None) -> str | None:
    """The column whose name comes first in `names` (or, failing that, one that is the chat role `role`)."""
    keys = [c.strip().lower() for c in columns]
    for n in names:
        if n in keys:
            return columns[keys.index(n)]
    return next((c for c in columns if role and canonical_role(c) == role), None)


def _reads_like_data(columns: list[str]) -> bool:
    """A header row of values: a number, or a cell that is a sentence (it ends like one, or runs past six words)."""
    return any(NUMBER.fullmatch(c.strip()) or SENTENCE_END.search(c) or len(c.split()) > 6 for c in columns)


def _by_number(cells: list[str]) -> str:
    """Speaker and text columns by number, from a first row of data: the text is the cell of most words (the
    last, on a tie), the speaker a cell that looks like one (`speaker#A`, `화자 2`), else a word before the text."""
    speakers = [i for i, c in enumerate(cells) if SPEAKER_CELL.fullmatch(c.strip())]
    words = [(len(c.split()), i) for i, c in enumerate(cells)
             if c.strip() and not NUMBER.fullmatch(c.strip()) and i not in speakers]
    if not words:
        return ""
    text = max(words)[1]
    before = [i for n, i in words if i < text]
    speaker = speakers[0] if speakers else (before[-1] if before else None)
    return ("" if speaker is None else f"--speaker-column {speaker} ") + f"--text-column {text} --no-header"


def column_hint(columns: list[str], header: bool = True) -> str:
    """The options to try, as a clause for the error line ('' when nothing looks likely). `header`: whether
    `columns` are a header row (else: the first row of data)."""
    if header:
        q, a = _named(columns, PROMPT, "user"), _named(columns, ANSWER, "assistant")
        if q and a and q != a:
            return f"; for paired rows try --prompt-column {_arg(q)} --answer-column {_arg(a)}"
        s, t = _named(columns, SPEAKER), _named(columns, TEXT)
        if s and t and s != t:
            return f"; for a transcript try --speaker-column {_arg(s)} --text-column {_arg(t)}"
    if header and not _reads_like_data(columns):
        return ""
    options = _by_number(columns)
    if not options:
        return ""
    what = "its first row reads like data, not a header: " if header else ""
    return f"; {what}for a transcript without a header, try {options} (0-based column numbers)"


def advice(cells: list[str], header: bool = True) -> str:
    """`column_hint`, or where nothing fits, how a table that is no part of the corpus is left out: the clause the
    build's error and lint's D006 end with."""
    return column_hint(cells, header) or (" (a table that is not part of the corpus, an index of it say, is left out "
                                          "with --exclude NAME, or `[lint] exclude` in malmungchi.toml)")


@dataclass(frozen=True)
class ColumnCheck:
    """Lint's D006 is on: the config names no table columns. `header`: its header setting (None: the default)."""
    header: bool | None = None


def check_columns(text: str, path: str, header: bool | None = None) -> list[Diagnostic]:
    """D006 for a table the build reads only with column options (lint, when the config names none): more than
    one column and none called `text`. `header`: the build's setting (False: the first row is data)."""
    first = next((row for row in csv.reader(io.StringIO(text[:1 << 16], newline=""),
                                            delimiter=table_delimiter(path, text)) if any(c.strip() for c in row)),
                 None)
    if first is None or len(first) < 2 or (header is not False and "text" in first):
        return []
    hint = advice(first, header is not False)
    shown = ", ".join(c if len(c) <= 24 else c[:23] + "…" for c in first) if header is not False else \
        f"{len(first)} columns, no header"
    end = text.find("\n")
    return [Diagnostic("D006", f"the build reads this table only with its columns named (columns: {shown}){hint}",
                       path, 0, len(text) if end < 0 else len(text[:end].rstrip("\r")))]
