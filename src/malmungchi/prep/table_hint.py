"""What to pass for a .csv/.tsv read without column options that has no `text` column: the options that look
right from its header (`Q`/`A` → --prompt-column Q --answer-column A), or, when the header row reads like data
(a transcript without one: `3.590, 8.840, speaker#A, 네 …`), the columns by number with --no-header. Only a
suggestion in the error line: the build never guesses."""

from __future__ import annotations

import regex

PROMPT = {"q", "question", "prompt", "input", "instruction", "query", "user", "human", "질문", "입력", "요청"}
ANSWER = {"a", "answer", "response", "output", "reply", "assistant", "bot", "gpt", "답변", "대답", "응답", "출력", "답"}
SPEAKER = {"speaker", "spk", "name", "who", "role", "character", "화자", "이름", "인물", "발화자"}
TEXT = {"text", "utterance", "sentence", "transcript", "content", "line", "발화", "내용", "문장", "대사"}
NUMBER = regex.compile(r"[+-]?\d+([.,:]\d+)*")
SENTENCE_END = regex.compile(r"\S\s+\S.*[.?!…。]\s*$")  # words, then a sentence's last mark
SPEAKER_CELL = regex.compile(r"(?i)(speaker|spk|화자)\W*\w*|[A-Z]|\w{1,12}#\w+")


def _named(columns: list[str], names: set[str]) -> str | None:
    return next((c for c in columns if c.strip().lower() in names), None)


def _reads_like_data(columns: list[str]) -> bool:
    """A header row of values: a number, or a cell that is a sentence (it ends like one, or runs past six words)."""
    return any(NUMBER.fullmatch(c.strip()) or SENTENCE_END.search(c) or len(c.split()) > 6 for c in columns)


def column_hint(columns: list[str]) -> str:
    """The options to try, as a clause for the error line ('' when nothing looks likely)."""
    if _reads_like_data(columns):
        texts = [i for i, c in enumerate(columns) if len(c.split()) > 1 and not NUMBER.fullmatch(c.strip())]
        speakers = [i for i, c in enumerate(columns) if SPEAKER_CELL.fullmatch(c.strip()) and i not in texts]
        if not texts:
            return ""
        text = max(texts, key=lambda i: len(columns[i]))
        speaker = f"--speaker-column {speakers[0]} " if speakers else ""
        return (f"; its first row reads like data, not a header: for a transcript without one, try {speaker}"
                f"--text-column {text} --no-header (0-based column numbers)")
    q, a = _named(columns, PROMPT), _named(columns, ANSWER)
    if q and a:
        return f"; for paired rows try --prompt-column {q} --answer-column {a}"
    s, t = _named(columns, SPEAKER), _named(columns, TEXT)
    if s and t:
        return f"; for a transcript try --speaker-column {s} --text-column {t}"
    return ""
