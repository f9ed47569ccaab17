"""Apply fixes: safe ones with --fix, unsafe ones too with --unsafe-fixes; files are replaced atomically."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from malmungchi.atomic import write_bytes
from malmungchi.corpus import hygiene, kspon
from malmungchi.corpus.markers import scan_markers
from malmungchi.corpus.rules import RULES, FixSafety, matches
from malmungchi.corpus.source import decode, read_bytes
from malmungchi.corpus.walk import MARKER_SUFFIXES
from malmungchi.schemas.registry import Registry


@dataclass
class FixResult:
    path: str
    before: str  # decoded text as found (a BOM shows as U+FEFF)
    after: str
    original: bytes
    applied: list[str]  # codes whose fix changed something

    @property
    def new_bytes(self) -> bytes:
        return self.after.encode("utf-8")

    @property
    def changed(self) -> bool:
        return self.new_bytes != self.original

    def diff(self) -> str:
        text = "".join(difflib.unified_diff(self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
                                            fromfile=f"a/{self.path}", tofile=f"b/{self.path}"))
        if not text and self.changed:
            text = f"--- a/{self.path}\n+++ b/{self.path}\n(encoding only: {', '.join(self.applied)})\n"
        return text


def _allowed(code: str, select: list[str], ignore: list[str], unsafe: bool) -> bool:
    safety = RULES[code].fix
    if safety is None or not matches(code, select) or matches(code, ignore):
        return False
    return safety is FixSafety.safe or unsafe


def fix_text(text: str, path: str, registry: Registry, allowed) -> tuple[str, list[str]]:
    """Apply every allowed text fix in a fixed order; returns the new text and the codes that changed it."""
    applied: list[str] = []

    def step(code: str, fn) -> None:
        nonlocal text
        if allowed(code):
            new = fn(text)
            if new != text:
                if code not in applied:
                    applied.append(code)
                text = new

    step("U005", hygiene.fix_line_endings)
    step("U002", hygiene.remove_invisible)
    step("U003", hygiene.remove_control)
    step("U001", hygiene.to_nfc)
    if path.lower().endswith(MARKER_SUFFIXES):
        # a rewrite can complete a neighbouring candidate (`|SOUND|sound|>` → `|SOUND|>sound|>`), so rewrite
        # until nothing changes: one --fix run must leave nothing for a second one
        for _ in range(8):
            before = text
            for code in ("M003", "M002"):
                step(code, lambda t, c=code: _rewrite_markers(t, registry, c))
            if text == before:
                break
        step("S009", lambda t: _insert_end_markers(t, path, registry))
    elif path.lower().endswith((".csv", ".tsv")) and registry.style_for(path) == "kspon":
        step("T002", lambda t: kspon.fix(t, {"T002"}))
        step("T001", lambda t: kspon.fix(t, {"T001"}))
    return text, applied


def _insert_end_markers(text: str, path: str, registry: Registry) -> str:
    """S009: write out the END markers of start-only blocks where the parser closed them."""
    from malmungchi.corpus.parse import parse_text

    inserts = parse_text(text, path, registry, tree=False).insertions
    return _splice(text, [(at, at, end) for at, end in sorted(inserts, key=lambda x: x[0])])


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """`text` with each (start, end, replacement) applied; the edits are in order and do not overlap."""
    if not edits:
        return text
    out, pos = [], 0
    for start, end, new in edits:
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _rewrite_markers(text: str, registry: Registry, code: str) -> str:
    tokens, _ = scan_markers(text, registry)
    return _splice(text, [(t.start, t.end, t.canonical) for t in tokens if t.code == code])


def fix_file(path: str, registry: Registry, *, select: list[str], ignore: list[str], unsafe: bool) -> FixResult | None:
    """The fixed text of one file, or None when the file cannot be fixed as text (binary, unreadable)."""
    data = read_bytes(path)
    if not isinstance(data, bytes):
        return None
    decoded = decode(data, path)
    if decoded.text is None:
        return None

    def allowed(code: str) -> bool:
        return _allowed(code, select, ignore, unsafe)

    applied: list[str] = []
    if decoded.encoding != "utf-8":
        code = "F001" if decoded.encoding == "cp949" else "F002"
        if not allowed(code):
            return None  # a legacy-encoded file is only rewritten together with its re-encoding
        applied.append(code)
    keep_bom = decoded.bom and not allowed("F006")
    if decoded.bom and not keep_bom:
        applied.append("F006")
    text, more = fix_text(decoded.text, path, registry, allowed)
    bom = "\ufeff" if decoded.bom else ""
    before = bom + decoded.text
    after = ("\ufeff" if keep_bom else "") + text
    return FixResult(path, before, after, data, applied + more)


def apply(result: FixResult) -> None:
    write_bytes(result.path, result.new_bytes)
