"""Unicode hygiene checks (U rules) and their fixes, as whole-text passes that stay in C where they can."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np

from malmungchi.corpus.diagnostics import Diagnostic

INVISIBLE_RANGES = ((0x00AD, 0x00AD), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064),
                    (0x2066, 0x2069), (0xFEFF, 0xFEFF))
CONTROL_RANGES = ((0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F))  # C0 but tab/LF/CR, DEL, C1


def _char_class(ranges) -> str:
    return "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges)


INVISIBLE = _char_class(INVISIBLE_RANGES)
CONTROL = _char_class(CONTROL_RANGES)
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


NORMAL, INVIS, CTRL, FFFD, SUSPECT = 0, 1, 2, 3, 4
CHUNK = 1 << 22  # characters per vectorised step: bounds the temporary arrays on huge files


@lru_cache(maxsize=1)
def _classes() -> np.ndarray:
    """A class for every BMP code point. SUSPECT marks what could make a text non-NFC: combining marks,
    characters that NFC changes, and characters that may combine with the one before (Hangul vowel/final
    jamo, second halves of canonical pairs). A text without SUSPECT characters is NFC."""
    table = np.zeros(0x10000, dtype=np.uint8)
    for cp in range(0x10000):
        ch = chr(cp)
        if unicodedata.combining(ch) or (not 0xD800 <= cp < 0xE000 and unicodedata.normalize("NFC", ch) != ch):
            table[cp] = SUSPECT
        decomposition = unicodedata.decomposition(ch).split()
        if len(decomposition) == 2 and not decomposition[0].startswith("<"):
            table[int(decomposition[1], 16)] = SUSPECT
    table[0x1160:0x1200] = SUSPECT  # Hangul jungseong/jongseong combine with a preceding syllable or choseong
    table[0xD7B0:0xD800] = SUSPECT
    table[0xD800:0xE000] = SUSPECT  # a surrogate: only seen for astral characters, checked the slow way
    for lo, hi in INVISIBLE_RANGES:
        table[lo:hi + 1] = INVIS
    for lo, hi in CONTROL_RANGES:
        table[lo:hi + 1] = CTRL
    table[0xFFFD] = FFFD
    return table


def odd_characters(text: str):
    """Yield (offsets, classes) numpy arrays for every character that is not NORMAL, chunk by chunk."""
    table = _classes()
    for i in range(0, len(text), CHUNK):
        seg = text[i:i + CHUNK]
        if seg.isascii():
            codes = np.frombuffer(seg.encode("ascii"), dtype=np.uint8)
        else:
            raw = seg.encode("utf-16-le", "surrogatepass")
            if len(raw) == 2 * len(seg):
                codes = np.frombuffer(raw, dtype=np.uint16)
            else:  # astral characters: one 32-bit unit each keeps offsets equal to string offsets
                wide = np.frombuffer(seg.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
                codes = np.where(wide > 0xFFFF, 0xD800, wide).astype(np.uint16)
        cls = table[codes]
        nz = np.flatnonzero(cls)
        if nz.size:
            yield nz + i, cls[nz]


def check(text: str, path: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    suspects: list[np.ndarray] = []
    run_start = run_end = -1
    run_cls = NORMAL

    def flush() -> None:
        if run_cls != NORMAL:
            out.append(_odd(text, path, run_cls, run_start, run_end))

    for offsets, classes in odd_characters(text):
        is_suspect = classes == SUSPECT
        if is_suspect.any():
            suspects.append(offsets[is_suspect])
        keep = ~is_suspect
        for off, cls in zip(offsets[keep].tolist(), classes[keep].tolist()):
            if cls == run_cls and off == run_end:
                run_end += 1
                continue
            flush()
            run_start, run_end, run_cls = off, off + 1, cls
    flush()
    if suspects:
        out.extend(_not_nfc(text, path, np.concatenate(suspects)))
    mixed = _mixed_line_endings(text, path)
    if mixed:
        out.append(mixed)
    return out


def _odd(text: str, path: str, cls: int, start: int, end: int) -> Diagnostic:
    ch, n = text[start], end - start
    more = f" and {n - 1} more" if n > 1 else ""
    if cls == FFFD:
        return Diagnostic("U004", f"{n} U+FFFD replacement character{'s' * (n > 1)}: text was lost in an earlier "
                                  "conversion", path, start, end)
    if cls == INVIS:
        return Diagnostic("U002", f"invisible U+{ord(ch):04X} ({_name(ch)}){more}", path, start, end, fix="remove")
    return Diagnostic("U003", f"control character U+{ord(ch):04X}{more}", path, start, end, fix="remove")


def _not_nfc(text: str, path: str, suspects: np.ndarray) -> list[Diagnostic]:
    """U001 for each line that holds a suspect character and is not NFC; only those lines are checked."""
    out = []
    line_end = -1
    for off in suspects.tolist():
        if off < line_end:
            continue
        line_start = text.rfind("\n", 0, off) + 1
        line_end = text.find("\n", off)
        if line_end == -1:
            line_end = len(text)
        line = text[line_start:line_end]
        if unicodedata.is_normalized("NFC", line):
            continue
        nfc = unicodedata.normalize("NFC", line)
        i = 0
        while i < len(line) and i < len(nfc) and line[i] == nfc[i]:
            i += 1
        end = line_start + len(line.rstrip("\r"))
        out.append(Diagnostic("U001", "text is not NFC (decomposed Hangul jamo)", path, min(line_start + i, end),
                              end, fix="normalize to NFC"))
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
