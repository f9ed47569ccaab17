"""Lint files and folders: decode, Unicode hygiene, markers and structure, in parallel over files."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from malmungchi.corpus import datafiles, hygiene, kspon
from malmungchi.corpus.diagnostics import Diagnostic, line_starts, locate
from malmungchi.corpus.parse import ParseResult, parse_text
from malmungchi.corpus.rules import matches
from malmungchi.corpus.source import Decoded, decode, read_bytes
from malmungchi.corpus.table_hint import ColumnCheck, check_columns
from malmungchi.corpus.walk import discover
from malmungchi.schemas.registry import Registry

SERIAL_BELOW_BYTES = 8 << 20  # below this much input a process pool costs more than it saves


@dataclass
class FileResult:
    path: str
    size: int
    encoding: str
    diagnostics: list[Diagnostic]
    titles: list[tuple[str, int, int]] = field(default_factory=list)  # (title, line, column)


@dataclass
class LintRun:
    files: list[FileResult]
    missing: list[str]  # paths given on the command line that do not exist
    skipped: list[str] = field(default_factory=list)  # lines naming our own output folders that were not linted

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for f in self.files for d in f.diagnostics]


def lint_text(text: str, path: str, registry: Registry, *, tree: bool = False, columns: ColumnCheck | None = None
              ) -> tuple[list[Diagnostic], ParseResult | None]:
    """All text-level diagnostics of one decoded file (offsets only; call `locate` for lines). `columns`: also
    whether a table can be read without column options (D006), when the config names none."""
    diagnostics = hygiene.check(text, path)
    lower = path.lower()
    if lower.endswith(".jsonl"):
        return diagnostics + datafiles.check_jsonl(text, path), None
    if lower.endswith((".csv", ".tsv")):
        more = kspon.check(text, path) if registry.style_for(path) == "kspon" else []
        unnamed = [] if columns is None else check_columns(text, path, columns.header)
        return diagnostics + datafiles.check_table(text, path) + more + unnamed, None
    parsed = parse_text(text, path, registry, tree=tree)
    return diagnostics + long_lines(text, path) + parsed.diagnostics, parsed


LONG_LINE = 50_000  # characters: far beyond any paragraph a training row holds at the usual max_length


def long_lines(text: str, path: str, limit: int = LONG_LINE) -> list[Diagnostic]:
    """F008 at the start of every line of `limit` characters or more (a text shorter than that has none)."""
    if len(text) < limit or not _may_have_long_line(text, limit):
        return []
    starts = line_starts(text) + [len(text)]
    out = []
    for start, end in zip(starts, starts[1:]):
        if end - start >= limit and (n := len(text[start:end].rstrip("\r\n"))) >= limit:
            out.append(Diagnostic("F008", f"line of {n:,} characters: longer than any training row holds; break it "
                                          "into paragraphs", path, start, start))
    return out


def _may_have_long_line(text: str, limit: int) -> bool:
    """False when no line can have `limit` characters: every aligned block of half that holds a line break, as a
    line that long would hold a whole block. A few hundred `find`s a megabyte, where listing every line's start
    took milliseconds."""
    half = max(1, limit // 2)
    return not all(text.find("\n", s, s + half) >= 0 or text.find("\r", s, s + half) >= 0
                   for s in range(0, len(text) - half + 1, half))


def lint_decoded(decoded: Decoded, registry: Registry, columns: ColumnCheck | None = None) -> FileResult:
    diagnostics = list(decoded.diagnostics)
    titles: list[tuple[str, int, int]] = []
    if decoded.text is not None and decoded.text and not decoded.text.isspace():
        text_diags, parsed = lint_text(decoded.text, decoded.path, registry, columns=columns)
        if parsed is not None and parsed.titles:
            marks = [Diagnostic("S005", t, decoded.path, off, off) for t, off in parsed.titles]
            locate(marks, decoded.text)
            titles = [(m.message, m.line, m.column) for m in marks]
        locate(text_diags, decoded.text)
        if not decoded.rewritable:
            # --fix leaves a CP949/UTF-16 file alone unless it may re-encode it (unsafe), so no text fix of
            # such a file is on offer by itself: do not mark it [*] fixable
            for d in text_diags:
                d.fix = None
        diagnostics += text_diags
    return FileResult(decoded.path, decoded.size, decoded.encoding, diagnostics, titles)


def lint_file(path: str, registry: Registry, columns: ColumnCheck | None = None) -> FileResult:
    data = read_bytes(path)
    if isinstance(data, Diagnostic):
        return FileResult(path, 0, "unreadable", [data])
    decoded = decode(data, path)
    del data  # the decoded text is all we need from here; keep peak memory near one copy
    return lint_decoded(decoded, registry, columns)


_worker: tuple[Registry, ColumnCheck | None] | None = None


def _init_worker(registry: Registry, columns: ColumnCheck | None = None) -> None:
    global _worker
    _worker = (registry, columns)


def _lint_in_worker(path: str) -> FileResult:
    assert _worker is not None
    return lint_file(path, *_worker)


def _sizes(files: list[str]) -> list[int]:
    out = []
    for f in files:
        try:
            out.append(os.path.getsize(f))
        except OSError:
            out.append(0)
    return out


def lint_paths(paths: list[str], registry: Registry, *, select: list[str] | None = None,
               ignore: list[str] | None = None, exclude: list[str] | None = None, jobs: int | None = None,
               progress=None, columns: ColumnCheck | None = None) -> LintRun:
    """Lint every corpus file under `paths`; files run in parallel processes when there is enough input.
    `columns`: also report tables the build cannot read without column options (D006)."""
    found = discover(paths, exclude)
    sizes = _sizes(found.files)
    jobs = jobs or os.cpu_count() or 1
    results: list[FileResult] = []
    if jobs > 1 and len(found.files) > 1 and sum(sizes) >= SERIAL_BELOW_BYTES:
        # biggest files first so the pool does not end waiting on one large straggler
        order = sorted(range(len(found.files)), key=lambda i: -sizes[i])
        chunk = max(1, min(64, len(order) // (jobs * 8)))
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(registry, columns)) as pool:
            by_index: dict[int, FileResult] = {}
            for i, res in zip(order, pool.map(_lint_in_worker, [found.files[i] for i in order], chunksize=chunk)):
                by_index[i] = res
                if progress:
                    progress(sizes[i])
            results = [by_index[i] for i in range(len(found.files))]
    else:
        for f, size in zip(found.files, sizes):
            results.append(lint_file(f, registry, columns))
            if progress:
                progress(size)
    if found.problems:
        results.extend(FileResult(p.path, 0, "unreadable", [p]) for p in found.problems)
    _cross_file_titles(results)
    select, ignore = select or ["ALL"], ignore or []
    for r in results:
        r.diagnostics = sorted((d for d in r.diagnostics if matches(d.code, select) and not matches(d.code, ignore)),
                               key=Diagnostic.sort_key)
    return LintRun(results, found.missing, found.skipped_lines())


def _cross_file_titles(results: list[FileResult]) -> None:
    """S005 for a title that more than one book uses (each later use points at the first)."""
    first: dict[str, tuple[str, int]] = {}
    for r in results:
        for title, line, col in r.titles:
            if title in first and first[title] != (r.path, line):
                where = first[title]
                r.diagnostics.append(Diagnostic("S005", f"title {title!r} is also used at {where[0]}:{where[1]}",
                                                r.path, line=line, column=col, end_line=line, end_column=col))
            else:
                first.setdefault(title, (r.path, line))
