"""Find markers in text: canonical `|NAME|>` and the usual slips, resolved against the registry."""

from __future__ import annotations

from dataclasses import dataclass
import regex

from malmungchi.schemas.registry import MarkerSpec, Registry

# One pass finds every candidate. Alternatives, in order:
#   1. |NAME|>  <|NAME|>  | NAME |>  |name|>  |NAME|   (name may hold spaces: `| START OF TITLE |>`)
#   2. |NAME>   <|NAME>                                 (second bar missing)
#   3. NAME|>                                           (first bar missing)
CANDIDATE = regex.compile(
    r"""
    (?P<lt><)?\|[ \t]*(?P<n1>[A-Za-z][A-Za-z0-9_]*(?:[ \t]+[A-Za-z0-9_]+)*)[ \t]*\|(?P<gt>>)?
  | (?P<lt2><)?\|(?P<n2>[A-Za-z][A-Za-z0-9_]*)>
  | (?<![|A-Za-z0-9_])(?P<n3>[A-Za-z][A-Za-z0-9_]*)\|>
    """,
    regex.VERBOSE,
)
# Fast pre-check: a file with none of these characters has no marker candidates at all.
HAS_CANDIDATE = regex.compile(r"\||>")


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
    near: dict[str, str | None] = {}
    for m in CANDIDATE.finditer(text):
        raw = m.group()
        if m.group("n1") is not None:
            written = m.group("n1")
            complete = m.group("gt") is not None  # |X|> or <|X|>: certainly meant as a marker
        else:
            written = m.group("n2") or m.group("n3")
            complete = False
        name = "_".join(written.split()).upper()
        start, end = m.span()
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
