"""The speech-transcript conventions of KsponSpeech / AI Hub style transcripts (ETRI BACKSpeech among them), read
into the document tree like any other marker (`--transcript-style kspon`).

What a transcript line holds, and what it becomes:

| written                      | meaning                                   | in the tree                               |
|------------------------------|-------------------------------------------|-------------------------------------------|
| `/os1 … /oe`, `/os2 … /oe`   | speech overlapping another speaker's turn | the tags go; the overlap stays as the order of the rows (turns) |
| `[네.(BC/continuer)]`        | a backchannel and its function            | a `BACKCHANNEL` cue with the words (`네.`); its policy renders or drops it |
| `(360000명)/(삼십 육만 명)`    | dual transcription: written / spoken form | the written form (or the spoken one: `--dual-transcription spoken`) |
| `n/` `b/` `l/` `o/` `u/`     | noise, breath, laughter, another voice, unintelligible | a `SOUND` cue with a Korean description |
| `어/` `음/` `그/`              | a filler word                             | the word, without the slash               |

`scan` finds every tag with its place; `inline` gives the inline nodes of a cell; `check` the lint findings
(T001 unclosed overlap, T002 half a dual transcription, T003 unknown tag letter), with safe fixes where the
intent is certain (`fix`).
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from malmungchi.corpus.diagnostics import Diagnostic
from malmungchi.corpus.tree import Cue, Inline, Sound, Span, Text

STYLES = ("none", "kspon")
DUAL_FORMS = ("written", "spoken")
BACKCHANNEL = "BACKCHANNEL"
PUNCTUATION = tuple(".,?!…")
SOUND_TAGS = {"n": "잡음", "b": "숨소리", "l": "웃음", "o": "다른 사람 소리", "u": "알아들을 수 없는 말"}

# one alternation, so every tag is found once, left to right; a tag letter or a filler slash must stand alone
# (start of line or after a space), as the transcription guidelines write them
TAG = regex.compile(
    r"(?P<overlap>(?<![A-Za-z0-9])/os\d*|/oe(?![A-Za-z]))"
    r"|\[(?P<bc>[^\[\]()]*)\(BC/(?P<bcfn>[A-Za-z_]+)\)\]"
    r"|\((?P<written>[^()\n]+)\)/\((?P<spoken>[^()\n]+)\)"
    r"|(?<![^\s])(?P<letter>[A-Za-z])/(?=\s|$)"
    r"|(?<![^\s])(?P<filler>\p{Hangul}{1,3})/(?=\s|$)"
)
FILLER_SLASH = regex.compile(r"(\p{Hangul}{1,3})/(?=\s|$)")
HALF_DUAL = regex.compile(r"\((?P<a>[^()\n]+)\)(?P<gap>/?)(?:\((?P<b>[^()\n]*)\))?")


@dataclass(frozen=True)
class Tag:
    kind: str  # overlap | backchannel | dual | sound | filler | unknown
    start: int
    end: int
    text: str = ""  # what the tag stands for in the text (the words, the chosen form, the filler)
    cue: str | None = None  # the SOUND description, or the backchannel's words


def scan(text: str, dual: str = "written") -> list[Tag]:
    tags = []
    for m in TAG.finditer(text):
        if m.group("overlap"):
            tags.append(Tag("overlap", m.start(), m.end()))
        elif m.group("bcfn") is not None:
            words = FILLER_SLASH.sub(r"\1", m.group("bc")).strip()  # `[음/(BC/continuer)]`: the filler's slash
            tags.append(Tag("backchannel", m.start(), m.end(), cue=words))
        elif m.group("written") is not None:
            form = m.group("written") if dual == "written" else m.group("spoken")
            tags.append(Tag("dual", m.start(), m.end(), text=form.strip()))
        elif m.group("letter") is not None:
            letter = m.group("letter")
            if letter in SOUND_TAGS:
                tags.append(Tag("sound", m.start(), m.end(), cue=SOUND_TAGS[letter]))
            else:
                tags.append(Tag("unknown", m.start(), m.end(), text=letter))
        else:
            tags.append(Tag("filler", m.start(), m.end(), text=m.group("filler")))
    return tags


def inline(text: str, span: Span, dual: str = "written") -> tuple[Inline, ...]:
    """The inline nodes of one transcript cell: text with the tags read as above, whitespace the tags leave
    behind collapsed. All nodes share the cell's span (tables carry row positions, not character ones)."""
    parts: list[Inline] = []
    buf: list[str] = []
    pos = 0

    def flush() -> None:
        t = " ".join("".join(buf).split())
        if t:
            if parts and parts[-1].__class__ is not Text:
                t = " " + t
            parts.append(Text(t, span))
        buf.clear()

    for tag in scan(text, dual):
        buf.append(text[pos:tag.start])
        pos = tag.end
        if tag.kind in ("dual", "filler"):
            buf.append(tag.text)
        elif tag.kind == "unknown":
            buf.append(text[tag.start:tag.end])  # left as written; lint reports it (T003)
        elif tag.kind in ("sound", "backchannel"):
            before = "".join(buf)
            flush()
            if parts and parts[-1].__class__ is Text and before[-1:].isspace():
                parts[-1] = Text(parts[-1].text + " ", span)
            parts.append(Sound(tag.cue, span) if tag.kind == "sound" else Cue(BACKCHANNEL, tag.cue or None, span))
        elif text[tag.end:tag.end + 1] in PUNCTUATION:  # `같아요 /oe.`: the period goes back to its word
            buf[-1] = buf[-1].rstrip()
        else:  # overlap tags only mark timing: the rows' order keeps it
            buf.append(" ")
    buf.append(text[pos:])
    flush()
    if parts and parts[-1].__class__ is Text:
        parts[-1] = Text(parts[-1].text.rstrip(), span)
    return tuple(p for p in parts if p.__class__ is not Text or p.text)


def plain(text: str, dual: str = "written") -> str:
    """The cell as text with the tags resolved and the cues written `|NAME|>(cue)` (for reports and tests)."""
    out = []
    for p in inline(text, Span("", 0, 0), dual):
        if isinstance(p, Text):
            out.append(p.text)
        else:
            out.append(f"|{p.name}|>" + (f"({p.cue})" if p.cue else ""))
    return "".join(out)


def check(text: str, path: str) -> list[Diagnostic]:
    """T001–T003 over a transcript file, line by line (a row's cells never span lines in these files)."""
    out: list[Diagnostic] = []
    offset = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out += _check_line(body, path, offset)
        offset += len(line)
    return out


def _check_line(line: str, path: str, offset: int) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    tags = scan(line)
    depth_open: int | None = None
    for tag in tags:
        if tag.kind == "overlap":
            if line[tag.start:tag.end].startswith("/os"):
                if depth_open is not None:
                    out.append(Diagnostic("T001", "overlap /os… opened again before its /oe", path,
                                          offset + depth_open, offset + depth_open + 3))
                depth_open = tag.start
            elif depth_open is None:
                out.append(Diagnostic("T001", "/oe closes no /os… overlap", path, offset + tag.start,
                                      offset + tag.end))
            else:
                depth_open = None
        elif tag.kind == "unknown":
            out.append(Diagnostic("T003", f"unknown tag {tag.text}/ (known: {', '.join(f'{k}/' for k in SOUND_TAGS)} "
                                          "and filler words such as 어/)", path, offset + tag.start, offset + tag.end))
    if depth_open is not None:
        out.append(Diagnostic("T001", "overlap /os… is never closed by /oe on its line", path, offset + depth_open,
                              offset + depth_open + 3, fix="append /oe at the end of the line"))
    duals = [(t.start, t.end) for t in tags if t.kind == "dual" or t.kind == "backchannel"]
    for m in HALF_DUAL.finditer(line):
        if any(s <= m.start() < e for s, e in duals):
            continue
        if m.group("b") is not None and not m.group("gap"):
            out.append(Diagnostic("T002", f"dual transcription ({m.group('a')})({m.group('b')}) has no / between "
                                          "its written and spoken forms", path, offset + m.start(), offset + m.end(),
                                  fix="insert / between the two forms"))
        elif m.group("gap") and (m.group("b") is None or not m.group("b").strip()):
            out.append(Diagnostic("T002", f"dual transcription ({m.group('a')})/ has no spoken form", path,
                                  offset + m.start(), offset + m.end()))
    return out


def fix(text: str, codes: frozenset[str] | set[str] = frozenset({"T001", "T002"})) -> str:
    """The safe fixes of `codes`: `/` inserted into `(written)(spoken)` (T002), `/oe` appended to a line whose
    overlap never closes (T001). Applied line by line, other lines untouched."""
    lines = text.splitlines(keepends=True)
    out = []
    for line in lines:
        body = line.rstrip("\r\n")
        end = line[len(body):]
        diags = _check_line(body, "", 0)
        for d in sorted((d for d in diags if d.code == "T002" and d.fix and "T002" in codes),
                        key=lambda d: -d.offset):
            m = HALF_DUAL.match(body, d.offset)
            cut = m.end("a") + 1  # after the written form's closing parenthesis
            body = body[:cut] + "/" + body[cut:]
        if "T001" in codes and any(d.code == "T001" and d.fix for d in diags):
            body = body.rstrip() + " /oe"
        out.append(body + end)
    return "".join(out)
