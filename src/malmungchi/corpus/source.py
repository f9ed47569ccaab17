"""Read a file's bytes and decode them, reporting the encoding problems Korean corpora actually have."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from malmungchi.corpus.diagnostics import Diagnostic, locate

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(slots=True)
class Decoded:
    path: str
    text: str | None  # None when the file could not be read or is not text
    encoding: str  # utf-8 | cp949 | utf-16 | binary | unknown | unreadable
    bom: bool = False
    size: int = 0
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def rewritable(self) -> bool:
        """Whether safe fixes may rewrite this file as it is (UTF-8 text)."""
        return self.text is not None and self.encoding == "utf-8"


def read_bytes(path: str) -> bytes | Diagnostic:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        return Diagnostic("F007", f"cannot read file: {describe_os_error(exc)}", path)


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "no such file (a broken symlink?)"
    if exc.errno == errno.EISDIR:
        return "is a directory"
    return exc.strerror or str(exc)


def _hangul_share(text: str) -> float:
    """Share of Hangul syllables among the non-ASCII letters: high for real CP949 Korean text, whatever
    number of ASCII marker names (`|START_OF_DIALOGUE|>`) it holds; low for other bytes that happen to decode."""
    hangul = sum(1 for c in text if "\uac00" <= c <= "\ud7a3")
    letters = sum(1 for c in text if c.isalpha() and not c.isascii())
    return hangul / letters if letters else 0.0


def _looks_utf16(data: bytes) -> str | None:
    if data.startswith(UTF16_BOMS):
        return "utf-16"
    if len(data) >= 4 and len(data) % 2 == 0:
        sample = data[:4096]
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        if odd > len(sample) // 4 and even == 0:
            return "utf-16-le"
        if even > len(sample) // 4 and odd == 0:
            return "utf-16-be"
    return None


def decode(data: bytes, path: str) -> Decoded:
    """Decode bytes as UTF-8 (BOM allowed), or recognise CP949, UTF-16 and binary without crashing."""
    size = len(data)
    if size == 0:
        return Decoded(path, "", "utf-8", size=0, diagnostics=[Diagnostic("F004", "file is empty", path)])
    utf16 = _looks_utf16(data)
    if utf16 is not None:
        try:
            text = data.decode(utf16)
        except UnicodeDecodeError:
            text = None
        if text is not None:
            text = text.lstrip("\ufeff")
            d = Diagnostic("F002", "file is UTF-16; every stage reads UTF-8", path, fix="re-encode as UTF-8")
            return Decoded(path, text, "utf-16", size=size, diagnostics=[d])
    if b"\x00" in data:
        at = data.index(b"\x00")
        return Decoded(path, None, "binary", size=size,
                       diagnostics=[Diagnostic("F003", f"file is binary: NUL byte at byte {at}", path)])
    bom = data.startswith(UTF8_BOM)
    diags: list[Diagnostic] = []
    if bom:
        diags.append(Diagnostic("F006", "file starts with a UTF-8 byte-order mark", path, fix="remove the BOM"))
    try:
        text = data.decode("utf-8-sig" if bom else "utf-8")
    except UnicodeDecodeError as exc:
        try:
            legacy = data.decode("cp949")
        except UnicodeDecodeError:
            legacy = None
        if legacy is not None and _hangul_share(legacy[:20000]) > 0.6:
            diags.append(Diagnostic("F001", "file is CP949/EUC-KR; every stage reads UTF-8", path,
                                    fix="re-encode as UTF-8"))
            return Decoded(path, legacy, "cp949", bom=bom, size=size, diagnostics=diags)
        skip = len(UTF8_BOM) if bom else 0  # utf-8-sig counts exc.start from after the BOM
        bad = exc.start + skip
        off = len(data[skip:bad].decode("utf-8", "replace"))
        diags.append(Diagnostic("F005", f"invalid UTF-8 byte 0x{data[bad]:02x} at byte {bad} "
                                        "(not CP949 or UTF-16 either); re-save the file as UTF-8",
                                path, off, off))
        locate(diags, data[skip:].decode("utf-8", "replace"))
        return Decoded(path, None, "unknown", bom=bom, size=size, diagnostics=diags)
    if not text or text.isspace():
        diags.append(Diagnostic("F004", "file holds only whitespace" if text else "file holds only a byte-order mark",
                                path))
    return Decoded(path, text, "utf-8", bom=bom, size=size, diagnostics=diags)
