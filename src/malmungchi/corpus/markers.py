"""Find markers in text: canonical `|NAME|>` and the usual slips, resolved against the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass

from malmungchi.schemas.registry import MarkerSpec, Registry

# One pass finds every candidate. Every alternative starts with a bar, so the scan runs at memchr speed:
#   |NAME|>  |name|>  | NAME |>  |NAME|    (a `<` just before the bar is taken in by the code below)
#   |NAME>                                (second bar missing)
#   |>                                    (first bar missing: the name is read backwards from the bar)
CANDIDATE = re.compile(
    r"\|(?:[ \t]*(?P<n1>[A-Za-z][A-Za-z0-9_]*(?:[ \t]+[A-Za-z0-9_]+)*)[ \t]*\|(?P<gt>>)?"
    r"|(?P<n2>[A-Za-z][A-Za-z0-9_]*)>"
    r"|>)"
)
NAME_BEFORE = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
NAME_CHARS = frozenset("|ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(slots=True)
class MarkerToken:
    start: int
    end: int
    raw: str
    name: str  # the resolved canonical name (the suggestion for a near miss)
    spec: MarkerSpec
    role: str  # open | close | point
    code: str | None = None  # M002 or M003 when the spelling needs a fix

    @property
    def canonical(self) -> str:
        return f"|{self.name}|>"


@dataclass(slots=True)
class UnknownMarker:
    start: int
    end: int
    raw: str
    name: str


def scan_markers(text: str, registry: Registry) -> tuple[list[MarkerToken], list[UnknownMarker]]:
    """All marker tokens in order, and the unknown marker-like spans."""
    tokens: list[MarkerToken] = []
    unknown: list[UnknownMarker] = []
    if "|" not in text:
        return tokens, unknown
    known = registry.tokens
    canonical = registry.canonical
    near: dict[str, str | None] = {}
    for m in CANDIDATE.finditer(text):
        start, end = m.span()
        raw = m.group()
        hit = canonical.get(raw)
        if hit is not None and (start == 0 or text[start - 1] != "<"):
            tokens.append(MarkerToken(start, end, raw, *hit))
            continue
        written = m.group("n1")
        if written is not None:
            complete = m.group("gt") is not None  # |X|> or <|X|>: certainly meant as a marker
        else:
            written = m.group("n2")
            complete = False
            if written is None:  # a bare "|>": look for NAME right before it
                found = NAME_BEFORE.search(text, max(0, start - 64), start)
                if found is None or (found.start() > 0 and text[found.start() - 1] in NAME_CHARS):
                    continue
                written, start = found.group(), found.start()
        if start > 0 and text[start - 1] == "<" and not (tokens and tokens[-1].end > start - 1):
            start -= 1
        raw = text[start:end]
        name = "_".join(written.split()).upper()
        if name in known:
            spec, role = known[name]
            code = None if raw == f"|{name}|>" else "M003"
            tokens.append(MarkerToken(start, end, raw, name, spec, role, code))
            continue
        if name not in near:
            near[name] = registry.near_miss(name)
        suggestion = near[name]
        if suggestion is not None:
            spec, role = known[suggestion]
            tokens.append(MarkerToken(start, end, raw, suggestion, spec, role, "M002"))
        elif complete:
            unknown.append(UnknownMarker(start, end, raw, name))
    return tokens, unknown


def canonical_spelling_issue(raw: str, name: str) -> str:
    """Say what is wrong with a non-canonical spelling of a known marker, for the M003 message."""
    issues = []
    if raw.startswith("<"):
        issues.append("a leading '<'")
    inner = raw.lstrip("<")
    if not inner.startswith("|"):
        issues.append("a missing leading '|'")
    if not raw.endswith(">"):
        issues.append("a missing '>'")
    elif not raw.endswith("|>"):
        issues.append("a missing '|' before '>'")
    if any(c.isspace() for c in raw):
        issues.append("spaces inside")
    if any(c.islower() for c in raw):
        issues.append("lower case")
    return ", ".join(issues) or "a non-canonical form"
