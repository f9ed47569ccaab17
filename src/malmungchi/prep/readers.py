"""Read every input file into documents (the stage-1 tree), with its lint errors and its checksum.

Marker `.txt` goes through the parser; `.jsonl` `text` records are marker text too (one or more books per record)
and `messages` records become one dialogue; `.csv/.tsv` rows become paired dialogues (prompt/answer columns) or one
transcript dialogue (speaker/text columns). Every document id is `KEY#N`, KEY being a path that does not depend
on where the corpus sits on disk, so ids (and therefore splits) survive moving the corpus.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field

from malmungchi.corpus.datafiles import (canonical_role, table_delimiter, unknown_role_message, unknown_roles,
                                         unpaired_surrogate, unpaired_surrogate_message, valid_messages)
from malmungchi.corpus.diagnostics import Diagnostic, locate
from malmungchi.corpus.lint import lint_text
from malmungchi.corpus.parse import parse_text
from malmungchi.corpus.rules import Severity
from malmungchi.corpus.source import decode, read_bytes
from malmungchi.corpus.tree import Dialogue, Document, Span, Text, Turn
from malmungchi.corpus.walk import discover
from malmungchi.errors import UserError
from malmungchi.prep.ledger import DropKind
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import Registry


@dataclass
class Dropped:
    id: str
    title: str | None
    reason: str
    kind: DropKind = DropKind.LINT_ERROR


@dataclass
class SourceFile:
    path: str  # as given on the command line (or found under a given folder)
    key: str  # the stable name used in document ids
    sha256: str
    size: int
    documents: list[Document] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)  # error diagnostics (the file is refused without them)
    file_broken: bool = False  # an error outside any document: the whole file is unusable
    groups: dict[str, str] = field(default_factory=dict)  # document id → group (rows of one book share a split)


class InputError(UserError):
    """Inputs that do not exist or cannot be read as asked (one line each)."""


class Inputs(list):
    """(path, key) pairs, plus the lines naming what was skipped (our own outputs, annotation files) and the
    folders reached twice."""

    def __init__(self, pairs, skipped: list[str], revisited: list[Diagnostic] | None = None):
        super().__init__(pairs)
        self.skipped = skipped
        self.revisited = revisited or []  # F007 for folders reached twice (symlink loops): lint's verdict too


def find_inputs(paths: list[str], exclude: list[str] | None = None) -> Inputs:
    """(path, key) for every corpus file under `paths`, sorted by key so the build does not depend on argv order.
    Build and run directories under them are skipped (listed in `.skipped`)."""
    out: dict[str, str] = {}
    missing: list[str] = []
    unreadable: list[str] = []
    skipped: list[str] = []
    revisited: list[Diagnostic] = []
    for given in paths:
        found = discover([given], exclude)
        missing += found.missing
        skipped += found.skipped_lines()
        revisited += [d for d in found.problems if not d.message.startswith("cannot read folder")]
        # a folder that cannot be listed hides an unknown number of documents: refuse rather than build without
        # them (a folder reached twice through a symlink is only skipped)
        unreadable += [f"{d.path}: {d.message}" for d in found.problems if d.message.startswith("cannot read folder")]
        base = os.path.dirname(os.path.abspath(given.rstrip("/\\"))) if os.path.isdir(given) else None
        for f in found.files:
            key = os.path.relpath(os.path.abspath(f), base) if base else os.path.basename(f)
            key = key.replace(os.sep, "/")
            unique, n = key, 2
            while unique in out and out[unique] != f:
                unique, n = f"{key}~{n}", n + 1
            out[unique] = f
    if missing or unreadable:
        raise InputError([f"{m}: no such file or folder" for m in missing] + unreadable)
    if not out:
        raise InputError([f"no corpus files (.txt, .jsonl, .csv, .tsv) under {' '.join(paths)}"] + skipped)
    return Inputs(sorted(((p, k) for k, p in out.items()), key=lambda pk: pk[1]), skipped, revisited)


def read_source(path: str, key: str, registry: Registry, cfg: BuildConfig) -> SourceFile:
    data = read_bytes(path)
    if isinstance(data, Diagnostic):
        return SourceFile(path, key, "", 0, errors=[data], file_broken=True)
    src = SourceFile(path, key, hashlib.sha256(data).hexdigest(), len(data))
    decoded = decode(data, path)
    del data
    errors = [d for d in decoded.diagnostics if d.severity is Severity.error]
    if decoded.text is None or errors:
        src.errors, src.file_broken = errors, True
        return src
    text = decoded.text
    lower = path.lower()
    if lower.endswith(".jsonl"):
        _read_jsonl(src, text, registry, cfg.group_by)
    elif lower.endswith((".csv", ".tsv")):
        _read_table(src, text, cfg, registry.style_for(path))
    else:
        _read_marker(src, text, registry)
    return src


def _read_marker(src: SourceFile, text: str, registry: Registry) -> None:
    diags, parsed = lint_text(text, src.key, registry, tree=True)
    errors = [d for d in diags if d.severity is Severity.error]
    for d in errors:
        d.path = src.path
    locate(errors, text)
    src.errors = errors
    broken: dict[int, list[str]] = {}
    for d in errors:
        book = next((i for i, (s, e) in enumerate(parsed.books) if s <= d.offset < e or (s <= d.offset == e)), None)
        if book is None:
            src.file_broken = True
        else:
            broken.setdefault(book, []).append(f"{d.code} at line {d.line}: {d.message}")
    for i, doc in enumerate(parsed.documents):
        if i in broken:
            src.dropped.append(Dropped(doc.id, doc.title, "; ".join(broken[i])))
        else:
            src.documents.append(doc)


def _group(record: dict, field: str | None, default: str | None) -> str | None:
    """The group of a row: its `field` value when one is named (rows without it stand alone), else `default`."""
    if field is None:
        return default
    value = record.get(field)
    return None if value is None or isinstance(value, (dict, list)) else f"{field}={value}"


def _read_jsonl(src: SourceFile, text: str, registry: Registry, group_by: str | None = None) -> None:
    index = 0
    offset = 0
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        start, offset = offset, offset + len(line)
        if not line.strip():
            continue
        here = f"line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            _bad(src, "D001", f"{here} is not valid JSON: {exc.msg}", start, number)
            continue
        if unpaired_surrogate(line, record):
            _bad(src, "D005", unpaired_surrogate_message(number), start, number)
            index += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("text"), str):
            parsed = parse_text(record["text"], f"{src.key}:{number}", registry, tree=True)
            errs = [d for d in parsed.diagnostics if d.severity is Severity.error]
            group = _group(record, group_by, src.key)  # scene rows of one file: one book by default
            for doc in parsed.documents:
                doc = _renumber(doc, src.key, index)
                index += 1
                if group is not None:
                    src.groups[doc.id] = group
                if errs:
                    src.dropped.append(Dropped(doc.id, doc.title, f"{here}: " + "; ".join(
                        f"{d.code}: {d.message}" for d in errs[:3])))
                else:
                    src.documents.append(doc)
            for d in errs:
                _bad(src, d.code, f"{here}: {d.message}", start, number, drop=False)
        elif isinstance(record, dict) and valid_messages(record.get("messages")) and \
                (unknown := unknown_roles(record["messages"])):
            _bad(src, "D004", unknown_role_message(number, unknown), start, number)
            index += 1
        elif isinstance(record, dict) and valid_messages(record.get("messages")):
            turns = tuple(Turn(canonical_role(m["role"]), (Text(m["content"], _span(src.key, start, number)),),
                               _span(src.key, start, number)) for m in record["messages"] if m["content"].strip())
            span = _span(src.key, start, number)
            doc = Document(src.key, index, record.get("title"), (Dialogue(turns, span),), span)
            index += 1
            group = _group(record, group_by, None)  # conversations stand alone unless a field groups them
            if group is not None:
                src.groups[doc.id] = group
            src.documents.append(doc)
        else:
            _bad(src, "D002", f"{here}: record needs a string 'text' or a 'messages' list of {{'role', 'content'}}",
                 start, number)
            index += 1


def _bad(src: SourceFile, code: str, message: str, offset: int, line: int, drop: bool = True) -> None:
    src.errors.append(Diagnostic(code, message, src.path, offset, offset, line=line, column=1, end_line=line,
                                 end_column=1))
    if drop:
        src.dropped.append(Dropped(f"{src.key}:{line}", None, f"{code}: {message}"))


def _renumber(doc: Document, key: str, index: int) -> Document:
    return Document(key, index, doc.title, doc.segments, doc.span, doc.terminated)


def _span(path: str, offset: int, line: int) -> Span:
    return Span(path, offset, offset, line, 1, line, 1)


class _NoColumn(Exception):
    """A column option that this table does not have: the file is refused (D003), not the whole build."""


def _column(df, name: str | None, header: bool, what: str) -> str | None:
    if name is None:
        return None
    if not header:
        if not name.isdigit() or int(name) >= len(df.columns):
            raise _NoColumn(f"--{what}-column {name!r}: without a header give a 0-based column number below "
                            f"{len(df.columns)}")
        return df.columns[int(name)]
    if name not in df.columns:
        if name.isdigit() and int(name) < len(df.columns):
            return df.columns[int(name)]
        import difflib

        hint = difflib.get_close_matches(name, df.columns, n=1)
        raise _NoColumn(f"no column {name!r} for --{what}-column (columns: {', '.join(df.columns)})"
                        + (f"; did you mean {hint[0]!r}?" if hint else ""))
    return name


def _table_error(src: SourceFile, message: str) -> None:
    src.errors.append(Diagnostic("D003", message, src.path))
    src.file_broken = True


def _table_without_bad_rows(src: SourceFile, text: str, sep: str, header: bool, exc: Exception):
    """What polars could not read, read row by row: each row with another number of fields than the first is a
    D003 error of its own (dropped with --allow-errors, counted), the rest is kept. A file that cannot be parsed
    at all (an unclosed quote) is one D003 error for the file, its message on one line."""
    import csv

    import polars as pl

    reader = csv.reader(io.StringIO(text.replace("\r\n", "\n"), newline=""), delimiter=sep, quotechar='"',
                        strict=True)
    rows: list[list[str]] = []
    try:
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if rows and len(row) != len(rows[0]):
                _bad(src, "D003", f"row at line {reader.line_num} has {len(row)} fields, the first row has "
                                  f"{len(rows[0])}", 0, reader.line_num)
                continue
            rows.append(row)
    except csv.Error as err:
        _table_error(src, f"cannot read table at line {reader.line_num}: {err}")
        return None
    if not rows or not any(d.code == "D003" for d in src.errors):  # polars failed on what the rows do not show
        _table_error(src, "cannot read table: " + " ".join(str(exc).split())[:300])
        return None
    names = rows[0] if header else [f"column_{i + 1}" for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    return pl.DataFrame({n: [r[i] for r in body] for i, n in enumerate(names)},
                        schema={n: pl.String for n in names})


def _read_table(src: SourceFile, text: str, cfg: BuildConfig, style: str = "none") -> None:
    import polars as pl

    sep = table_delimiter(src.path, text)
    named = [c for c in (cfg.prompt_column, cfg.answer_column, cfg.speaker_column, cfg.text_column) if c]
    header = cfg.header if cfg.header is not None else not (named and all(c.isdigit() for c in named))
    try:
        df = pl.read_csv(io.StringIO(text.replace("\r\n", "\n")), separator=sep, has_header=header,
                         infer_schema=False, quote_char='"', truncate_ragged_lines=False)
    except Exception as exc:  # polars raises ComputeError/NoDataError…: find the rows, keep the good ones
        df = _table_without_bad_rows(src, text, sep, header, exc)
        if df is None:
            return None
    groups = None
    per_row = bool(cfg.prompt_column) or not (cfg.speaker_column or cfg.text_column)  # a transcript is one document
    if cfg.group_by and per_row:
        try:
            col = _column(df, cfg.group_by, header, "group")
        except _NoColumn:
            return _table_error(src, f"no column {cfg.group_by!r} for --group-by (columns: {', '.join(df.columns)})")
        groups = [None if v is None else f"{cfg.group_by}={v}" for v in df[col].to_list()]
    try:
        _table_documents(src, df, cfg, header, _cell_reader(style, cfg.dual_transcription))
    finally:
        if groups is not None:
            for doc in src.documents:
                if doc.index < len(groups) and groups[doc.index] is not None:
                    src.groups[doc.id] = groups[doc.index]


def _cell_reader(style: str, dual: str):
    """A table cell → its inline parts: text as written, or read with the transcript conventions (corpus.kspon)."""
    if style == "kspon":
        from malmungchi.corpus import kspon

        return lambda text, span: kspon.inline(text.strip(), span, dual)
    return lambda text, span: (Text(text.strip(), span),)


def _table_documents(src: SourceFile, df, cfg: BuildConfig, header: bool, cell) -> None:
    """The documents of a read table: paired rows, text rows or one transcript (see `_read_table`); `cell` reads
    a cell's text into inline parts."""
    if cfg.prompt_column or cfg.answer_column:
        return _paired_rows(src, df, cfg, header, cell)
    if not (cfg.speaker_column or cfg.text_column):
        return _text_rows(src, df, header, cell)
    return _transcript(src, df, cfg, header, cell)


def _paired_rows(src: SourceFile, df, cfg: BuildConfig, header: bool, cell) -> None:
    """--prompt-column/--answer-column: one user/assistant exchange per row."""
    if not (cfg.prompt_column and cfg.answer_column):
        raise InputError([f"{src.path}: give both --prompt-column and --answer-column"])
    try:
        q = _column(df, cfg.prompt_column, header, "prompt")
        a = _column(df, cfg.answer_column, header, "answer")
    except _NoColumn as exc:
        return _table_error(src, str(exc))
    qname, aname = "user", "assistant"  # paired rows are roles already (chat mode keeps them as such)
    for i, (qt, at) in enumerate(zip(df[q].to_list(), df[a].to_list())):
        line = i + 1 + header
        span = _span(src.key, 0, line)
        if not (qt or "").strip() or not (at or "").strip():
            src.dropped.append(Dropped(f"{src.key}#{i}", None, f"row at line {line}: empty prompt or answer",
                                       DropKind.EMPTY))
            continue
        q_parts, a_parts = cell(qt, span), cell(at, span)
        if not q_parts or not a_parts:
            src.dropped.append(Dropped(f"{src.key}#{i}", None, f"row at line {line}: empty prompt or answer",
                                       DropKind.EMPTY))
            continue
        turns = (Turn(qname, q_parts, span), Turn(aname, a_parts, span))
        src.documents.append(Document(src.key, i, None, (Dialogue(turns, span),), span))


def _text_rows(src: SourceFile, df, header: bool, cell) -> None:
    """No column options: a `text` column (or the only column) holds marker-free text, one document per row."""
    col = "text" if "text" in df.columns else (df.columns[0] if len(df.columns) == 1 else None)
    if col is None:
        from malmungchi.corpus.table_hint import advice

        cells = df.columns if header else [("" if v is None else str(v)) for v in (df.row(0) if len(df) else ())]
        hint = advice(cells, header)
        raise InputError([f"{src.path}: say which columns to read: --prompt-column/--answer-column for paired "
                          f"dialogue or --speaker-column/--text-column for a transcript "
                          f"(columns: {', '.join(df.columns)}){hint}"])
    from malmungchi.corpus.tree import Narration

    for i, t in enumerate(df[col].to_list()):
        if t and t.strip():
            span = _span(src.key, 0, i + 1 + header)
            parts = cell(t, span)
            if parts:
                src.documents.append(Document(src.key, i, None, (Narration(parts, span),), span))


def _transcript(src: SourceFile, df, cfg: BuildConfig, header: bool, cell) -> None:
    """--speaker-column/--text-column: the whole table is one dialogue, a turn per row."""
    try:
        s = _column(df, cfg.speaker_column, header, "speaker")
        t = _column(df, cfg.text_column, header, "text")
    except _NoColumn as exc:
        return _table_error(src, str(exc))
    if t is None:
        raise InputError([f"{src.path}: --speaker-column needs --text-column"])
    speakers = df[s].to_list() if s else [None] * len(df)
    turns = []
    for i, (who, said) in enumerate(zip(speakers, df[t].to_list())):
        if said and said.strip():
            span = _span(src.key, 0, i + 1 + header)
            parts = cell(said, span)
            if parts:
                turns.append(Turn(who.strip() if who else None, parts, span))
    if turns:
        span = _span(src.key, 0, 1)
        src.documents.append(Document(src.key, 0, None, (Dialogue(tuple(turns), span),), span))
