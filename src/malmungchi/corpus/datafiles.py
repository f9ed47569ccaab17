"""Shape checks for `.jsonl` and `.csv/.tsv` inputs (D rules): they must decode and parse line by line."""

from __future__ import annotations

import csv
from collections import Counter
import io
import json
import re

from malmungchi.corpus.diagnostics import Diagnostic

MAX_REPORTS = 50  # per file and rule; a wholly broken file should not print a million lines
SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, any surrogate is half a pair: a pair is one character


def table_delimiter(path: str, text: str) -> str:
    """Tab for `.tsv`, and for a `.csv` whose first lines all hold the same number of tabs (BACKSpeech
    transcripts are tab-separated `.csv` files whose text has commas, which fools a first-line guess)."""
    if path.lower().endswith(".tsv"):
        return "\t"
    lines = [ln for ln in text[:65536].split("\n")[:20] if ln.strip()]
    if lines:
        tabs, seen = Counter(ln.count("\t") for ln in lines).most_common(1)[0]
        if tabs and seen > len(lines) / 2:  # most lines agree on a tab count: a ragged row stays a finding
            return "\t"
    first = lines[0] if lines else ""
    return "\t" if "\t" in first and "," not in first else ","


def check_jsonl(text: str, path: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    bad = {"D001": 0, "D002": 0, "D004": 0, "D005": 0}
    offset = 0
    for number, line in enumerate(_lines(text), start=1):
        start, offset = offset, offset + len(line)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad["D001"] += 1
            if bad["D001"] <= MAX_REPORTS:
                out.append(Diagnostic("D001", f"line {number} is not valid JSON: {exc.msg}", path,
                                      start + min(exc.pos, len(line.rstrip("\r\n"))), start + len(line.rstrip("\r\n"))))
            continue
        if unpaired_surrogate(line, record):
            bad["D005"] += 1
            if bad["D005"] <= MAX_REPORTS:
                out.append(Diagnostic("D005", unpaired_surrogate_message(number), path, start,
                                      start + len(line.rstrip("\r\n"))))
            continue
        if not _record_ok(record):
            bad["D002"] += 1
            if bad["D002"] <= MAX_REPORTS:
                out.append(Diagnostic("D002", f"line {number}: record needs a string 'text' or a 'messages' list of "
                                              "{'role', 'content'}", path, start, start + len(line.rstrip("\r\n"))))
        elif not isinstance(record.get("text"), str) and (unknown := unknown_roles(record["messages"])):
            bad["D004"] += 1
            if bad["D004"] <= MAX_REPORTS:
                out.append(Diagnostic("D004", unknown_role_message(number, unknown), path, start,
                                      start + len(line.rstrip("\r\n"))))
    out.extend(_more(bad, path))
    return out


def unpaired_surrogate(line: str, record) -> bool:
    """Whether a record parsed from `line` holds half of a surrogate pair anywhere. Only a `\\u` escape can
    put one there (the file itself decoded as UTF-8), so a line without `\\ud` is not looked into."""
    if "\\ud" not in line and "\\uD" not in line:
        return False
    todo = [record]
    while todo:
        x = todo.pop()
        if isinstance(x, str):
            if SURROGATE.search(x):
                return True
        elif isinstance(x, dict):
            todo.extend(x.keys())
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)
    return False


def unpaired_surrogate_message(number: int) -> str:
    return (f"line {number}: a string holds half of a surrogate pair (a lone \\ud800-\\udfff escape), which is "
            "no character; re-export the file, or --allow-errors drops the record")


def _lines(text: str):
    """Lines ended by LF only: JSON strings may hold U+2028, U+0085 or form feeds, where str.splitlines splits."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


ROLES = ("system", "user", "assistant")
# other datasets' names for the same roles (ShareGPT, Gemini, OpenAI's newer system role): mapped, never dropped
ROLE_ALIASES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant",
                "developer": "system"}


def canonical_role(role: str) -> str | None:
    """`role` as one of ROLES (aliases mapped, case and surrounding space ignored), or None when it is unknown."""
    r = role.strip().lower()
    return r if r in ROLES else ROLE_ALIASES.get(r)


def unknown_roles(messages: list[dict]) -> list[tuple[int, str]]:
    """(1-based message number, role) of every message whose role is not a chat role or a known alias."""
    return [(i, m["role"]) for i, m in enumerate(messages, start=1) if canonical_role(m["role"]) is None]


def unknown_role_message(number: int, unknown: list[tuple[int, str]]) -> str:
    shown = ", ".join(f"message {i} has role {r!r}" for i, r in unknown[:3])
    more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
    return (f"line {number}: {shown}{more}; roles are {', '.join(ROLES)} "
            f"(or {', '.join(sorted(ROLE_ALIASES))}, mapped)")


def valid_messages(messages) -> bool:
    """A chat record's `messages`: a non-empty list of {"role": str, "content": str} (lint, build and eval agree)."""
    return isinstance(messages, list) and bool(messages) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    )


def _record_ok(record) -> bool:
    if not isinstance(record, dict):
        return False
    return isinstance(record.get("text"), str) or valid_messages(record.get("messages"))


def check_table(text: str, path: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    delimiter = table_delimiter(path, text)
    width = None
    count = 0
    # csv needs the line offsets to locate rows; walk physical lines alongside the reader
    starts = [0]
    for line in io.StringIO(text, newline=""):
        starts.append(starts[-1] + len(line))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            line_no = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if width is None:
                width = len(row)
                continue
            if len(row) != width:
                count += 1
                if count <= MAX_REPORTS:
                    s = starts[min(line_no - 1, len(starts) - 1)]
                    e = starts[min(line_no, len(starts) - 1)]
                    end = s + len(text[s:e].rstrip("\r\n"))  # the row without its line ending (CRLF too)
                    out.append(Diagnostic("D003", f"row at line {line_no} has {len(row)} fields, the first row has "
                                                  f"{width}", path, s, end))
    except csv.Error as exc:
        s = starts[min(reader.line_num - 1, len(starts) - 1)] if reader.line_num else 0
        out.append(Diagnostic("D003", f"cannot parse table at line {reader.line_num}: {exc}", path, s, s))
    out.extend(_more({"D003": count}, path))
    return out


def _more(counts: dict[str, int], path: str) -> list[Diagnostic]:
    return [Diagnostic(code, f"{n - MAX_REPORTS} more lines with the same problem", path)
            for code, n in counts.items() if n > MAX_REPORTS]
