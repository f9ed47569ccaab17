"""Render lint results: rich, text, json, github and sarif formats, and the --statistics table."""

from __future__ import annotations

import json
from collections import Counter

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from malmungchi import __version__
from malmungchi.corpus.diagnostics import Diagnostic, line_starts
from malmungchi.corpus.rules import RULES, FixSafety, Severity
from malmungchi.corpus.source import UTF8_BOM, decode
from malmungchi.tables import Fitted

FORMATS = ("rich", "text", "json", "github", "sarif")
DOCS_URL = "https://github.com/malmungchi/malmungchi/blob/main/docs/rules.md"


def _marker(d: Diagnostic) -> str:
    return " [*]" if d.fix_safety is FixSafety.safe else ""


def text_lines(diagnostics: list[Diagnostic]) -> list[str]:
    return [f"{d.path}:{d.line}:{d.column}: {d.code}{_marker(d)} {d.message}" for d in diagnostics]


def summary(diagnostics: list[Diagnostic], fixing: bool = False) -> str:
    if not diagnostics:
        return "All checks passed!"
    errors = sum(d.severity is Severity.error for d in diagnostics)
    warnings = len(diagnostics) - errors
    safe = sum(d.fix_safety is FixSafety.safe for d in diagnostics)
    unsafe = sum(d.fix_safety is FixSafety.unsafe for d in diagnostics)
    n = len(diagnostics)
    line = f"Found {n} problem{'s' * (n != 1)} ({errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)})."
    if not fixing and safe:
        line += f"\n[*] {safe} fixable with `--fix`."
    if unsafe:
        line += f"\n{unsafe} more fixable with `--fix --unsafe-fixes`."
    return line


def as_json(diagnostics: list[Diagnostic]) -> str:
    return json.dumps([d.to_dict() for d in diagnostics], ensure_ascii=False, indent=2)


def as_github(diagnostics: list[Diagnostic]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    return [
        f"::{d.severity.value} file={esc(d.path)},line={d.line},col={d.column},endLine={d.end_line},"
        f"endColumn={d.end_column},title={d.code}::{esc(d.code + ' ' + d.message)}"
        for d in diagnostics
    ]


def as_sarif(diagnostics: list[Diagnostic]) -> str:
    codes = sorted({d.code for d in diagnostics})
    rules = [
        {
            "id": c,
            "name": RULES[c].name,
            "shortDescription": {"text": RULES[c].summary},
            "fullDescription": {"text": RULES[c].doc},
            "helpUri": f"{DOCS_URL}#{c.lower()}",
            "defaultConfiguration": {"level": RULES[c].severity.value},
        }
        for c in codes
    ]
    results = [
        {
            "ruleId": d.code,
            "ruleIndex": codes.index(d.code),
            "level": d.severity.value,
            "message": {"text": d.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": d.path.replace("\\", "/")},
                    "region": {"startLine": d.line, "startColumn": d.column,
                               "endLine": d.end_line, "endColumn": d.end_column},
                }
            }],
        }
        for d in diagnostics
    ]
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "malmungchi", "version": __version__, "informationUri": DOCS_URL,
                                "rules": rules}},
            "results": results,
        }],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2)


def statistics_rows(diagnostics: list[Diagnostic]) -> list[tuple[int, str, str, str, str]]:
    counts = Counter(d.code for d in diagnostics)
    fixable = {d.code for d in diagnostics if d.fix_safety is FixSafety.safe}
    return [(n, code, RULES[code].name, RULES[code].severity.value, "[*]" if code in fixable else "")
            for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def statistics_table(diagnostics: list[Diagnostic]) -> Fitted:
    return Fitted("lint statistics", ["count", "code", "rule", "severity", "fix"],
                  [[str(n), code, name, sev, fix] for n, code, name, sev, fix in statistics_rows(diagnostics)],
                  left=("code", "rule", "severity", "fix"))


def _source_line(cache: dict[str, list[str]], path: str, line: int) -> str | None:
    if path not in cache:
        try:
            with open(path, "rb") as fh:
                data = fh.read(64 << 20)
            text = decode(data, path).text  # as the linter read it: UTF-8, CP949 or UTF-16
            if text is None:
                text = data.removeprefix(UTF8_BOM).decode("utf-8", "replace")
            # lines end at LF, CRLF or a lone CR, as the linter counts them (str.splitlines also splits at form
            # feeds, U+2028, ...)
            starts = line_starts(text)
            cache[path] = [text[a:b].rstrip("\r\n") for a, b in zip(starts, starts[1:] + [len(text)])]
        except OSError:
            cache[path] = []
    lines = cache[path]
    return lines[line - 1] if 0 < line <= len(lines) else None


def print_rich(console: Console, diagnostics: list[Diagnostic], max_snippet_width: int = 160) -> None:
    """Diagnostics with the source line and a caret under the problem, grouped by file."""
    cache: dict[str, list[str]] = {}
    style = {Severity.error: "bold red", Severity.warning: "yellow"}
    for d in diagnostics:
        head = Text()
        head.append(f"{d.path}:{d.line}:{d.column}", style="bold")
        head.append(": ")
        head.append(d.code, style=style[d.severity])
        if d.fix_safety is FixSafety.safe:
            head.append(" [*]", style="cyan")
        head.append(f" {d.message}")
        console.print(head)
        src = _source_line(cache, d.path, d.line)
        if src is not None and src.strip():
            start = max(0, d.column - 1 - max_snippet_width // 2)
            shown = src[start:start + max_snippet_width]
            gutter = f"{d.line:>5} │ "
            console.print(Text(gutter, style="dim") + Text(shown.replace("\t", " ")))
            width = max(1, (d.end_column - d.column) if d.end_line == d.line else len(shown) - (d.column - 1 - start))
            caret = " " * _cells(shown[: d.column - 1 - start]) + "^" * max(1, min(width, 80))
            console.print(Text(" " * (len(gutter) - 2) + "│ ", style="dim") + Text(caret, style=style[d.severity]))
            if d.fix:
                console.print(Text(" " * (len(gutter) - 2) + "= ", style="dim") +
                              Text(f"fix ({d.fix_safety.value}): {d.fix}", style="cyan"))


def _cells(s: str) -> int:
    return cell_len(s)
