"""Parse marker text into the document tree, reporting marker (M) and structure (S) diagnostics.

The parse is one pass over the marker tokens with a stack of open blocks. The text between tokens is
never copied unless the tree is asked for (`tree=True`), so linting a large file stays cheap.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field

import re

from malmungchi.corpus.diagnostics import LINE_BREAK, Diagnostic, line_starts
from malmungchi.corpus.markers import MarkerToken, canonical_spelling_issue, scan_markers
from malmungchi.corpus.tree import Block, Cue, Dialogue, Document, Inline, Narration, Segment, Sound, Span, Text, Turn
from malmungchi.schemas.registry import BOOK, MarkerKind, Registry

BLANK_LINES = re.compile(r"(?:\r\n|\r|\n)[ \t]*(?:(?:\r\n|\r|\n)[ \t]*)+")
CUE = re.compile(r"\(([^()\r\n]{1,80})\)")
LEADING_CUES = re.compile(r"(?:\|[A-Z][A-Z0-9_]*\|>(?:\([^()\r\n]{1,80}\))?[ \t]*)*")
NOT_IN_NAME = r":：.,?!\"'“”‘’「」『』()\[\]|<>"  # (inside a character class) what no speaker name holds
NAME_FIRST = rf"[^\s{NOT_IN_NAME}]"  # a name's first character (and, in VERBATIM, its last)
NAME_MORE = rf"[^{NOT_IN_NAME}\r\n]"  # its others
SPEAKER_PREFIX = rf"[ \t]*(?P<speaker>{NAME_FIRST}{NAME_MORE}{{0,19}}?)[ \t]*[:：][ \t]+"
SPEAKER = re.compile(SPEAKER_PREFIX)
SPEAKER_AFTER_SPACE = re.compile(rf"\s*+(?:{SPEAKER_PREFIX})?")  # whitespace, then a `이름: ` if one starts there
# One line of a dialogue after any blank lines (not the empty rest after the last line break): its `이름: ` prefix
# if it has one, the rest of the line, and the line break. No part of SPEAKER_PREFIX matches a line break, so the
# prefix is found exactly as SPEAKER.match finds it on the line alone; without one, `rest` is the whole line.
DIALOGUE_LINE = re.compile(
    rf"(?:[^\S\r\n]*(?:\r\n|\r|\n))*(?!\Z)(?:{SPEAKER_PREFIX})?(?P<rest>[^\r\n]*)(?:\r\n|\r|\n)?"
)
NON_SPACE = re.compile(r"\S")
# The text of a dialogue block whose every line is one turn, `이름: text`, just as the renderer writes it: after the
# START's line break, lines of a name (that SPEAKER_PREFIX finds whole: it cannot hold a colon, and neither starts
# nor ends with whitespace), a colon, one space and a text that neither starts nor ends with whitespace (nothing
# for `str.strip` to take: `\s` is `str.isspace`), each ended by a line feed, the last just before the END. No bar,
# so no marker or cue. The parser makes its turns by splitting the lines (`Dialogue.lazy`'s `verbatim`), and the
# renderer copies them (`prep.render`).
VERBATIM = re.compile(rf"\n(?:{NAME_FIRST}(?:{NAME_MORE}{{0,18}}{NAME_FIRST})?: [^\s|](?:[^\r\n|]*[^\s|])?\n)+")

# A flow is the content of a book or block, in order: ("text", start, end), ("token", MarkerToken)
# or ("block", name, open_token, close_token | None, flow); a dialogue that VERBATIM matches, between its START
# and END, has None for its flow.
Flow = list[tuple]


@dataclass
class ParseResult:
    documents: list[Document]
    diagnostics: list[Diagnostic]  # offsets set; `locate` fills lines
    titles: list[tuple[str, int]]  # (title, offset) of every book title, for duplicate checks across files
    books: list[tuple[int, int]] = field(default_factory=list)  # (start, end) offsets of every book
    # (offset, text) of the |END_OF_X|> markers that S009's fix inserts (where start-only blocks were closed)
    insertions: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class _Frame:
    name: str
    open: MarkerToken
    flow: Flow = field(default_factory=list)
    until: int | None = None  # a line-scoped block (text after its START on that line) ends here: the line's end


class LineIndex:
    """Offsets → 1-based line/column, built lazily once per text."""

    def __init__(self, text: str):
        self.text = text
        self._starts: list[int] | None = None

    def position(self, offset: int) -> tuple[int, int]:
        if self._starts is None:
            self._starts = line_starts(self.text)
        i = bisect_right(self._starts, offset) - 1
        return i + 1, offset - self._starts[i] + 1

    def line_start(self, offset: int) -> int:
        """Where the line holding `offset` starts (after the last line break before it; never between the two
        characters of a CRLF, where no marker starts). A lookup, not a search back through the text: `rfind` of
        a `\r` in a file without one scans to its start, which made a file of start-only blocks quadratic."""
        if self._starts is None:
            self._starts = line_starts(self.text)
        return self._starts[bisect_right(self._starts, offset) - 1]

    def span(self, path: str, start: int, end: int) -> Span:
        """A span whose line/column are computed from this index when first asked for."""
        return Span(path, start, end, index=self)


class _Parser:
    def __init__(self, text: str, path: str, registry: Registry, tree: bool):
        self.text, self.path, self.registry, self.tree = text, path, registry, tree
        self.diagnostics: list[Diagnostic] = []
        self.titles: list[tuple[str, int]] = []
        self.documents: list[Document] = []
        self.books: list[tuple[int, int]] = []
        self.lines = LineIndex(text)
        self.insertions: list[tuple[int, str]] = []
        self.dialogues: list[tuple[int, int] | None] = []  # per dialogue: its speaker-less first line, or None
        self._new_book(0)

    # -- helpers -------------------------------------------------------------------------------
    def report(self, code: str, message: str, start: int, end: int, fix: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, self.path, start, end, fix=fix))

    def _new_book(self, start: int) -> None:
        self.book_start = start
        self.flow: Flow = []
        self.stack: list[_Frame] = []
        self.book_title: str | None = None

    def _current_flow(self) -> Flow:
        return self.stack[-1].flow if self.stack else self.flow

    def _context(self) -> str:
        return self.stack[-1].name if self.stack else BOOK

    # -- the pass ------------------------------------------------------------------------------
    def run(self) -> ParseResult:
        tokens, unknown = scan_markers(self.text, self.registry)
        for u in unknown:
            self.report("M001", f"unknown marker {u.raw!r}: register it under [markers.{u.name}] or correct it",
                        u.start, u.end)
        pos, ended = 0, False
        skip = -1
        for i, tok in enumerate(tokens):
            if i == skip:  # the END taken with its START
                continue
            if tok.start > pos:
                self._text(pos, tok.start)
            self._expire(tok.start)
            pos = tok.end
            if tok.code:
                self._spelling(tok)
            if tok.role == "open":
                after = tokens[i + 1] if i + 1 < len(tokens) else None
                if (after is not None and after.role == "close" and after.spec is tok.spec and not tok.code
                        and not after.code and self._context() in tok.spec.inside):
                    # a block whose END is the next marker (most dialogues): what `_open`, `_text` and `_close`
                    # would do, at once (it can be line-scoped by neither, nor close any block but itself)
                    if tok.spec.name == "DIALOGUE" and VERBATIM.fullmatch(self.text, tok.end, after.start):
                        # what `_closed` does for it: not empty, opens with a speaker; its flow is its text (None)
                        self.dialogues.append(None)
                        self._current_flow().append(("block", "DIALOGUE", tok, after, None))
                    else:
                        self._closed(tok.spec.name, tok, after,
                                     [("text", tok.end, after.start)] if after.start > tok.end else [])
                    pos, skip = after.end, i + 1
                    continue
                self._open(tok, tokens, i)
            elif tok.role == "close":
                self._close(tok)
            elif tok.spec.kind is MarkerKind.terminator:
                self._close_all_at(tok.canonical, tok.start)
                self._finish_book(tok.start, tok.end, terminated=True)
                ended = True
            else:
                ctx = self._context()
                if ctx not in tok.spec.inside:
                    self.report("S003", f"{tok.canonical} is not allowed inside {_where(ctx)}", tok.start, tok.end)
                self._current_flow().append(("token", tok))
        if pos < len(self.text):
            self._text(pos, len(self.text))
        self._expire(len(self.text))
        self._close_all_at("the end of the file", len(self.text))
        self._mixed_dialogue_styles()
        first = NON_SPACE.search(self.text, self.book_start)
        if first is not None:
            at = first.start()
            if ended:
                self.report("S006", "text after the last |END_OF_BOOK|> belongs to no finished book", at, at + 1)
            else:
                self.report("S007", "file has no |END_OF_BOOK|>: the whole file is read as one book", at, at + 1)
        self._finish_book(len(self.text), len(self.text), terminated=False)
        return ParseResult(self.documents, self.diagnostics, self.titles, self.books, self.insertions)

    # -- start-only spelling -------------------------------------------------------------------
    def _text(self, start: int, end: int) -> None:
        """Text between markers; a line-scoped block open on top takes it up to its line's end only."""
        while self.stack and self.stack[-1].until is not None and self.stack[-1].until < end:
            frame = self.stack[-1]
            if frame.until > start:
                frame.flow.append(("text", start, frame.until))
                start = frame.until
            self._pop(self._implicit_close(frame, frame.until))
        if end > start:
            self._current_flow().append(("text", start, end))

    def _expire(self, at: int) -> None:
        while self.stack and self.stack[-1].until is not None and self.stack[-1].until <= at:
            self._pop(self._implicit_close(self.stack[-1], self.stack[-1].until))

    def _line_end(self, at: int) -> int:
        brk = LINE_BREAK.search(self.text, at)
        return brk.start() if brk else len(self.text)

    def _starts_line(self, at: int) -> bool:
        return NON_SPACE.search(self.text, self.lines.line_start(at), at) is None

    def _line_scoped_end(self, tok: MarkerToken, tokens: list[MarkerToken], i: int) -> int | None:
        """Where a block opened by `tok` ends when it is line-scoped: text follows the START on its line and no
        |END_OF_X|> closes it, neither on that line nor later (before the next START_OF_X or the book's end: a
        dialogue whose first turn stands on the START line and whose END comes lines later is a closed block).
        None for a multi-line block, or when END markers are required."""
        if self.registry.require_end:
            return None
        end = self._line_end(tok.end)
        if NON_SPACE.search(self.text, tok.end, end) is None:
            return None
        name = tok.spec.name
        for j in range(i + 1, len(tokens)):  # not tokens[i + 1:]: a copy per START made a file of them quadratic
            later = tokens[j]
            if later.spec.name == name:
                if later.role == "close":
                    return None
                if later.role == "open":
                    break
            elif later.spec.kind is MarkerKind.terminator:
                break
        return end

    def _implicit_close(self, frame: _Frame, at: int) -> MarkerToken:
        """A zero-width END token for `frame` at `at` (the tree then reads as if the END were written there)."""
        o = frame.open
        return MarkerToken(at, at, "", f"END_OF_{frame.name}", o.spec, "close")

    def _close_start_only(self, frame: _Frame, at: int, where: str) -> None:
        """S009: a multi-line block without its END, closed before `where` (at offset `at`); the fix inserts the END
        marker there."""
        o = frame.open
        end = f"|END_OF_{frame.name}|>"
        self.report("S009", f"{o.canonical} has no {end}: closed before {where}", o.start, o.end,
                    fix=f"insert {end} before {where}")
        brk = LINE_BREAK.search(self.text)
        nl = brk.group() if brk else "\n"  # the file's own line ending: a fix must not mix them (U005)
        if at >= len(self.text):
            text = end + nl if not self.text or self.text[-1] in "\r\n" else nl + end + nl
        else:
            text = end + nl if self._starts_line(at) else end
        self.insertions.append((at, text))
        self._pop(self._implicit_close(frame, at))

    def _mixed_dialogue_styles(self) -> None:
        """S008 on the speaker-less dialogues of a file whose dialogues mostly have `이름: ` prefixes (the likely
        typo); a file of speaker-less dialogues (quoted speech in narration, one voice) is fine."""
        without = [d for d in self.dialogues if d is not None]
        if without and len(self.dialogues) - len(without) > len(without):
            for start, end in without:
                self.report("S008", "this dialogue has no '이름: ' speaker prefix, most in this file have one",
                            start, end)

    def _spelling(self, tok: MarkerToken) -> None:
        if tok.code == "M003":
            self.report("M003", f"marker {tok.raw!r} has {canonical_spelling_issue(tok.raw, tok.name)}",
                        tok.start, tok.end, fix=f"rewrite as {tok.canonical}")
        elif tok.code == "M002":
            self.report("M002", f"unknown marker {tok.raw!r}: did you mean {tok.canonical}?",
                        tok.start, tok.end, fix=f"rename to {tok.canonical}")

    def _open(self, tok: MarkerToken, tokens: list[MarkerToken], i: int) -> None:
        ctx = self._context()
        # start-only spelling: a block START at the start of a line that cannot stand in the open multi-line block
        # closes that block first (S009)
        while (ctx not in tok.spec.inside and self.stack and self.stack[-1].until is None
               and not self.registry.require_end and self._starts_line(tok.start)):
            self._close_start_only(self.stack[-1], tok.start, tok.canonical)
            ctx = self._context()
        if ctx not in tok.spec.inside:
            self.report("S003", f"{tok.canonical} is not allowed inside {_where(ctx)}", tok.start, tok.end)
        self.stack.append(_Frame(tok.spec.name, tok, until=self._line_scoped_end(tok, tokens, i)))

    def _close(self, tok: MarkerToken) -> None:
        name = tok.spec.name
        if not any(f.name == name for f in self.stack):
            self.report("S002", f"{tok.canonical} closes a block that was never opened", tok.start, tok.end)
            return
        while self.stack[-1].name != name:
            frame = self.stack[-1]
            if frame.until is not None:  # line-scoped, and its line ends here
                self._pop(self._implicit_close(frame, tok.start))
            else:
                self._unclosed(frame, tok.canonical)
                self._pop(None)
        self._pop(tok)

    def _close_all_at(self, where: str, at: int) -> None:
        while self.stack:
            frame = self.stack[-1]
            if frame.until is not None:  # a line-scoped block on the terminator's own line
                self._pop(self._implicit_close(frame, at))
            elif self.registry.require_end:
                self._unclosed(frame, where)
                self._pop(None)
            else:
                self._close_start_only(frame, at, where)

    def _unclosed(self, frame: _Frame, where: str) -> None:
        o = frame.open
        self.report("S001", f"{o.canonical} is never closed (|END_OF_{frame.name}|> missing before {where})",
                    o.start, o.end)

    def _pop(self, close: MarkerToken | None) -> None:
        frame = self.stack.pop()
        self._closed(frame.name, frame.open, close, frame.flow)

    def _closed(self, name: str, open_: MarkerToken, close: MarkerToken | None, flow: Flow) -> None:
        """The block `name` opened by `open_` is closed by `close` (None: left unclosed), holding `flow`: into
        the flow around it (the block on top of the stack, or the book), with its checks."""
        inner_end = close.start if close is not None else open_.end
        if close is not None and NON_SPACE.search(self.text, open_.end, inner_end) is None:
            self.report("S004", f"empty {name.lower()} block", open_.start, close.end)
        if name == "TITLE":
            title = " ".join(self._flow_text(flow).split())
            if self.book_title is not None and close is not None:
                self.report("S005", f"second title {title!r} in one book (first: {self.book_title!r})",
                            open_.start, close.end)
            elif title:
                self.book_title = title
                self.titles.append((title, open_.start))
        elif name == "DIALOGUE" and close is not None:
            self.dialogues.append(self._speakerless_first_line(open_.end, inner_end))
        self._current_flow().append(("block", name, open_, close, flow))

    def _flow_text(self, flow: Flow) -> str:
        return "".join(self.text[i[1]:i[2]] for i in flow if i[0] == "text")

    def _speakerless_first_line(self, start: int, end: int) -> tuple[int, int] | None:
        """(start, end) of the dialogue's first line with text when it has no `이름: ` (cues before the name are
        fine), else None; `_mixed_dialogue_styles` decides whether that is worth a warning."""
        text, pos = self.text, start
        while True:
            first = SPEAKER_AFTER_SPACE.match(text, pos, end)
            if first.group("speaker") is not None:
                return None
            at = first.end()
            if at == end:
                return None  # no text at all
            if text[at] in "|<":
                cues_end = LEADING_CUES.match(text, at, end).end()
                if cues_end == at:
                    return None  # the dialogue opens with a marker that is not a plain cue; structure rules cover it
                line_break = LINE_BREAK.search(text, at, end)
                line_end = line_break.start() if line_break else end
                after = NON_SPACE.search(text, cues_end, line_end)
                if after is None:  # a line of cues only: look at the next line
                    if line_break is None:
                        return None
                    pos = line_break.end()
                    continue
                at = after.start()
                if SPEAKER.match(text, at, end):  # a speaker prefix never runs past the end of its line
                    return None
            line_break = LINE_BREAK.search(text, at, end)
            return at, line_break.start() if line_break else end

    def _finish_book(self, content_end: int, end: int, terminated: bool) -> None:
        if NON_SPACE.search(self.text, self.book_start, content_end) is not None:
            self.books.append((self.book_start, end))
            if self.tree:
                index = len(self.documents)
                segments = tuple(self._segments(self.flow))
                span = self.lines.span(self.path, self.book_start, end)
                self.documents.append(Document(self.path, index, self.book_title, segments, span, terminated))
        self._new_book(end)

    # -- tree building -------------------------------------------------------------------------
    def _segments(self, flow: Flow) -> list[Segment]:
        out: list[Segment] = []
        parts: list[Inline] = []
        skip_to = 0

        def flush() -> None:
            if parts:
                stripped = _strip(parts, self)
                if stripped:
                    out.append(Narration(tuple(stripped), self._span_of(stripped)))
                parts.clear()

        for item in flow:
            kind = item[0]
            if kind == "text":
                if not parts and NON_SPACE.search(self.text, item[1], item[2]) is None:
                    continue  # whitespace between blocks: `flush` would strip it all away
                start = max(item[1], skip_to)
                pos = start
                for m in BLANK_LINES.finditer(self.text, start, item[2]):
                    self._add_text(parts, pos, m.start())
                    flush()
                    pos = m.end()
                self._add_text(parts, pos, item[2])
            elif kind == "token":
                part, skip_to = self._inline(item[1])
                parts.append(part)
            else:
                flush()
                name = item[1]
                if name == "DIALOGUE":
                    out.append(self._dialogue(item))
                elif name != "TITLE":
                    inner = self._segments(item[4])
                    end = item[3].end if item[3] else item[2].end
                    out.append(Block(name, tuple(inner), self.lines.span(self.path, item[2].start, end)))
        flush()
        return out

    def _add_text(self, parts: list[Inline], start: int, end: int) -> None:
        if end > start:
            parts.append(Text(self.text[start:end], Span(self.path, start, end, index=self.lines)))

    def _inline(self, tok: MarkerToken) -> tuple[Inline, int]:
        cue_match = CUE.match(self.text, tok.end)
        cue = cue_match.group(1) if cue_match else None
        end = cue_match.end() if cue_match else tok.end
        span = self.lines.span(self.path, tok.start, end)
        node: Inline = Sound(cue, span) if tok.name == "SOUND" else Cue(tok.name, cue, span)
        return node, end

    def _span_of(self, parts: list) -> Span:
        return Span(self.path, parts[0].span.start, parts[-1].span.end, index=self.lines)

    def _lines(self, flow: Flow) -> list[list[Inline]]:
        """The dialogue's content as lines of inline parts (cue text consumed, nested blocks skipped)."""
        lines: list[list[Inline]] = [[]]
        skip_to = 0
        for entry in flow:
            if entry[0] == "token":
                part, skip_to = self._inline(entry[1])
                lines[-1].append(part)
            elif entry[0] == "text":
                pos, end = max(entry[1], skip_to), entry[2]
                for brk in LINE_BREAK.finditer(self.text, pos, end):
                    self._add_text(lines[-1], pos, brk.start())
                    lines.append([])
                    pos = brk.end()
                self._add_text(lines[-1], pos, end)
        return lines

    def _dialogue(self, item: tuple) -> Dialogue:
        """The dialogue block `item` as turns; one of text alone (no cue, no nested block) takes the fast path:
        its (speaker, text) pairs now, its `Turn` nodes when someone reads them (`Dialogue.lazy`)."""
        _, _, open_tok, close_tok, flow = item
        end = close_tok.end if close_tok else open_tok.end
        span = self.lines.span(self.path, open_tok.start, end)
        if flow is None:
            start, stop = open_tok.end, close_tok.start
            return Dialogue.lazy(None, span, (plain_turns, self.text, self.path, self.lines, start, stop),
                                 (self.text, start + 1, stop - 1))
        if len(flow) == 1 and flow[0][0] == "text":
            start, stop = flow[0][1], flow[0][2]
            make = (plain_turns, self.text, self.path, self.lines, start, stop)
            if VERBATIM.fullmatch(self.text, start, stop):
                return Dialogue.lazy(None, span, make, (self.text, start + 1, stop - 1))
            return Dialogue.lazy(plain_pairs(self.text, start, stop), span, make)
        return Dialogue(tuple(self._turns(flow)), span)

    def _turns(self, flow: Flow) -> list[Turn]:
        """Turns: `이름: ` (after any leading cues) starts a speaker's turn; other lines continue the turn before.
        A line of cues alone joins the previous turn, or the next one at the start of the dialogue."""
        turns: list[Turn] = []
        speaker: str | None = None
        parts: list[Inline] = []
        waiting: list[Inline] = []  # cues on lines before the first turn

        def flush() -> None:
            if parts:
                stripped = _strip(parts, self)
                if stripped:
                    turns.append(Turn(speaker, tuple(stripped), self._span_of(stripped)))
                parts.clear()

        path, lines = self.path, self.lines

        def newline_at(part: Inline) -> Text:
            return Text("\n", Span(path, part.span.start, part.span.start, index=lines))

        for line in self._lines(flow):
            # first: the first part that is not blank text; text_at: the first text part that is not blank
            first = text_at = None
            for i, p in enumerate(line):
                if p.__class__ is Text:
                    t = p.text
                    if t and not t.isspace():
                        if first is None:
                            first = i
                        text_at = i
                        break
                elif first is None:
                    first = i
            if first is None:
                continue  # blank line
            if text_at is None:  # cues only
                if parts:
                    parts.append(newline_at(line[first]))
                    parts.extend(line)
                else:
                    waiting.extend(line)
                continue
            head = line[text_at]
            m = SPEAKER.match(head.text)
            if m:
                flush()
                speaker = m.group("speaker")
                rest = Text(head.text[m.end():], Span(path, head.span.start + m.end(), head.span.end, index=lines))
                if waiting:
                    parts.extend(waiting)
                if text_at:
                    parts.extend(line[:text_at])
                parts.append(rest)
                if text_at + 1 < len(line):
                    parts.extend(line[text_at + 1:])
            elif parts:
                parts.append(newline_at(line[first]))
                parts.extend(_strip(line, self))
            else:
                speaker = None
                parts.extend(waiting)
                parts.extend(line)
            if waiting:
                waiting = []
        parts.extend(waiting)
        flush()
        return turns


def plain_pairs(text: str, start: int, end: int) -> list[tuple[str | None, str]]:
    """(speaker, text) of each turn `plain_turns` makes of a dialogue of text alone, the text as the renderer
    writes a turn (its parts joined, trimmed), found from the lines' text alone (no match objects, no nodes)."""
    pairs: list[tuple[str | None, str]] = []
    speaker: str | None = None
    head: str | None = None  # the turn's first line (after the `이름: `)
    more: list[str] = []  # each further line with text, trimmed
    for name, rest in DIALOGUE_LINE.findall(text, start, end):
        if name:  # (a speaker is never empty: "" is a line without one)
            if head is not None:
                body = head.strip() if not more else _joined(head, more)
                if body:
                    pairs.append((speaker, body))
            speaker, head, more = name, rest, []
        elif rest and not rest.isspace():
            if head is None:  # text before the first `이름: ` is a turn of nobody
                head = rest
            else:
                more.append(rest.strip())
    if head is not None:
        body = head.strip() if not more else _joined(head, more)
        if body:
            pairs.append((speaker, body))
    return pairs


def _joined(head: str, more: list[str]) -> str:
    """A turn of several lines as the renderer writes it: the first line (if it has text), then each further one
    after a line break, trimmed."""
    first = head.lstrip()
    return ((first + "\n" if first else "") + "\n".join(more)).strip()


def plain_turns(text: str, path: str, index: LineIndex, start: int, end: int) -> list[Turn]:
    """`_Parser._turns` for a dialogue of text alone (no cue, no nested block), the usual case, in one regex pass
    over its lines and on offsets: only the parts that end up in a turn become `Text` nodes."""
    turns: list[Turn] = []
    speaker: str | None = None
    head: tuple[int, int] | None = None  # the turn's first line (after the `이름: `), not yet stripped
    more: list[tuple[int, int, int]] = []  # each further line: (line start, stripped start, stripped end)
    for m in DIALOGUE_LINE.finditer(text, start, end):
        name = m.group("speaker")
        if name is not None:
            if head is not None:
                _add_plain_turn(text, path, index, turns, speaker, head, more)
            speaker, head, more = name, m.span("rest"), []
            continue
        line = m.group("rest")
        if not line or line.isspace():  # a blank line at the end
            continue
        line_start = m.start("rest")
        if head is None:  # text before the first `이름: ` is a turn of nobody
            head = (line_start, line_start + len(line))
        else:
            lead = len(line) - len(line.lstrip())
            more.append((line_start, line_start + lead, line_start + len(line.rstrip())))
    if head is not None:
        _add_plain_turn(text, path, index, turns, speaker, head, more)
    return turns


def _add_plain_turn(text: str, path: str, index: LineIndex, turns: list[Turn], speaker: str | None,
                    head: tuple[int, int], more: list[tuple[int, int, int]]) -> None:
    """Append the turn `_strip` would make of these lines: the first line trimmed (dropped with the line break
    after it when blank), then a line break before each further line; nothing when all is blank. A turn of one
    part shares its span with that part (spans are values)."""
    start, end = head
    first = text[start:end]
    body = first.lstrip()
    start += len(first) - len(body)
    if not more:
        body = body.rstrip()
        if body:
            span = Span(path, start, start + len(body), index=index)
            turns.append(Turn(speaker, (Text(body, span),), span))
        return
    parts: list[Inline] = [Text(body, Span(path, start, end, index=index))] if body else []
    for line_start, s, e in more:
        if parts:
            parts.append(Text("\n", Span(path, line_start, line_start, index=index)))
        parts.append(Text(text[s:e], Span(path, s, e, index=index)))
    turns.append(Turn(speaker, tuple(parts), Span(path, parts[0].span.start, parts[-1].span.end, index=index)))


def _blank(p: Inline) -> bool:
    if p.__class__ is not Text:
        return False
    t = p.text
    return not t or t.isspace()


def _strip(parts: list[Inline], parser: _Parser) -> list[Inline]:
    """Trim whitespace at both ends of a run of inline parts (dropping parts that become empty)."""
    i, j = 0, len(parts)
    while i < j and _blank(parts[i]):
        i += 1
    while j > i and _blank(parts[j - 1]):
        j -= 1
    out = parts[i:j]
    if not out:
        return out
    t = out[0]
    if t.__class__ is Text:
        text = t.text
        cut = len(text) - len(text.lstrip())
        if cut:
            out[0] = t = Text(text[cut:], Span(t.span.path, t.span.start + cut, t.span.end, index=parser.lines))
    t = out[-1]
    if t.__class__ is Text:
        text = t.text
        kept = len(text.rstrip())
        if kept != len(text):
            out[-1] = Text(text[:kept], Span(t.span.path, t.span.start, t.span.start + kept, index=parser.lines))
    return out


def _where(ctx: str) -> str:
    return "a book (at book level)" if ctx == BOOK else f"a {ctx.lower()} block"


def parse_text(text: str, path: str, registry: Registry, *, tree: bool = True) -> ParseResult:
    """Parse one decoded file. With `tree=False` only diagnostics, titles and book ranges are produced."""
    with collector_paused():
        return _Parser(text, path, registry, tree).run()


@contextmanager
def collector_paused():
    """Hold the cyclic garbage collector off while a file is parsed (the build holds it off throughout, for the
    same reason: `prep.build.plan`). A tree has a dozen objects per dialogue and
    none in a reference cycle, so reference counting frees them all; but while they pile up, the collector passes
    over them (and over every older object) again and again, which cost an eighth of reading a dialogue corpus.
    Now they are looked at once, in the first collection after the parse; a caller that lets the tree go before
    that (the build renders it, then drops it) holds the collector off around both, and nobody looks at them.
    A collector already off stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
