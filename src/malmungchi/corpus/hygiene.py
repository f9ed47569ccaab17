"""Unicode hygiene checks (U rules) and their fixes, as whole-text passes that stay in C where they can."""

from __future__ import annotations

import re
import unicodedata

from malmungchi.corpus.diagnostics import Diagnostic

INVISIBLE = "\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# One pass finds runs of invisible, control and replacement characters; the first character says which.
ODD = re.compile(f"[{INVISIBLE}]+|[{CONTROL}]+|\ufffd+")
INVISIBLE_RUN = re.compile(f"[{INVISIBLE}]+")
CONTROL_RUN = re.compile(f"[{CONTROL}]+")
LONE_CR = re.compile(r"\r(?!\n)")
LONE_LF = re.compile(r"(?<!\r)\n")

NAMES = {
    "\u00ad": "soft hyphen", "\u180e": "Mongolian vowel separator", "\u200b": "zero-width space",
    "\u200c": "zero-width non-joiner", "\u200d": "zero-width joiner", "\u200e": "left-to-right mark",
    "\u200f": "right-to-left mark", "\u2060": "word joiner", "\ufeff": "zero-width no-break space (BOM)",
}


def _name(ch: str) -> str:
    return NAMES.get(ch) or unicodedata.name(ch, f"U+{ord(ch):04X}").lower()


def check(text: str, path: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if not text.isascii():
        if not unicodedata.is_normalized("NFC", text):
            out.extend(_not_nfc(text, path))
        for m in ODD.finditer(text):
            ch, (s, e) = m.group()[0], m.span()
            n = e - s
            if ch == "\ufffd":
                out.append(Diagnostic("U004", f"{n} U+FFFD replacement character{'s' * (n > 1)}: text was lost "
                                              "in an earlier conversion", path, s, e))
            elif INVISIBLE_RUN.match(ch):
                out.append(Diagnostic("U002", f"invisible U+{ord(ch):04X} ({_name(ch)})" + (f" and {n - 1} more" if n > 1 else ""),
                                      path, s, e, fix="remove"))
            else:
                out.append(Diagnostic("U003", f"control character U+{ord(ch):04X}" + (f" and {n - 1} more" if n > 1 else ""),
                                      path, s, e, fix="remove"))
    elif CONTROL_RUN.search(text):
        for m in CONTROL_RUN.finditer(text):
            out.append(Diagnostic("U003", f"control character U+{ord(m.group()[0]):04X}", path, *m.span(), fix="remove"))
    mixed = _mixed_line_endings(text, path)
    if mixed:
        out.append(mixed)
    return out


def _not_nfc(text: str, path: str) -> list[Diagnostic]:
    out = []
    start = 0
    for line in text.split("\n"):
        if not line.isascii() and not unicodedata.is_normalized("NFC", line):
            nfc = unicodedata.normalize("NFC", line)
            i = 0
            while i < len(line) and i < len(nfc) and line[i] == nfc[i]:
                i += 1
            out.append(Diagnostic("U001", "text is not NFC (decomposed Hangul jamo)", path, start + i,
                                  start + len(line.rstrip("\r")), fix="normalize to NFC"))
        start += len(line) + 1
    return out


def line_ending_counts(text: str) -> dict[str, int]:
    crlf = text.count("\r\n")
    return {"\r\n": crlf, "\n": text.count("\n") - crlf, "\r": text.count("\r") - crlf}


def dominant_line_ending(counts: dict[str, int]) -> str:
    return max(("\n", "\r\n", "\r"), key=lambda k: counts[k])  # ties go to LF, listed first


def _mixed_line_endings(text: str, path: str) -> Diagnostic | None:
    if "\r" not in text:
        return None
    counts = line_ending_counts(text)
    kinds = [k for k, v in counts.items() if v]
    if len(kinds) < 2:
        return None
    dominant = dominant_line_ending(counts)
    minority = {"\r\n": re.compile(r"\r\n"), "\n": LONE_LF, "\r": LONE_CR}
    first = min((minority[k].search(text).start() for k in kinds if k != dominant))
    label = {"\r\n": "CRLF", "\n": "LF", "\r": "CR"}
    what = ", ".join(f"{counts[k]} {label[k]}" for k in ("\r\n", "\n", "\r") if counts[k])
    return Diagnostic("U005", f"mixed line endings ({what})", path, first, first,
                      fix=f"convert all to {label[dominant]}")


# -- fixes ----------------------------------------------------------------------------------------
def fix_line_endings(text: str) -> str:
    if "\r" not in text:
        return text
    target = dominant_line_ending(line_ending_counts(text))
    unified = text.replace("\r\n", "\n").replace("\r", "\n")
    return unified if target == "\n" else unified.replace("\n", target)


def remove_invisible(text: str) -> str:
    return INVISIBLE_RUN.sub("", text)


def remove_control(text: str) -> str:
    return CONTROL_RUN.sub("", text)


def to_nfc(text: str) -> str:
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
