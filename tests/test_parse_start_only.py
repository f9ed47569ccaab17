"""The start-only spelling people actually type: `|START_OF_TITLE|>두 번째 이야기` (a one-line block), a dialogue
opened by `|START_OF_DIALOGUE|>` and never closed (it closes at the next block marker or the book's end, S009 with
a safe fix), quoted speech without speakers. Same tree and same build as the closed spelling."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.corpus.fix import fix_text
from malmungchi.corpus.parse import parse_text
from malmungchi.corpus.tree import Block, Dialogue, Narration
from malmungchi.schemas.registry import default_registry

REGISTRY = default_registry()

CLOSED = """|START_OF_TITLE|>두 번째 이야기|END_OF_TITLE|>

할머니는 떡을 이고 고개를 넘었다. |SOUND|>(바람 소리)

|START_OF_DIALOGUE|>"조심해서 걸어라." 할머니가 말했다.|END_OF_DIALOGUE|>
|START_OF_DIALOGUE|>"네, 할머니." 손녀가 대답했다.|END_OF_DIALOGUE|>

|START_OF_DIALOGUE|>
호랑이: 떡 하나 주면 안 잡아먹지.
할머니: |SOUND|>(흐느끼는 소리) 여기 있다.
|END_OF_DIALOGUE|>
|START_OF_DIALOGUE|>
호랑이: 하나 더.
|END_OF_DIALOGUE|>
|END_OF_BOOK|>
"""

START_ONLY = """|START_OF_TITLE|>두 번째 이야기

할머니는 떡을 이고 고개를 넘었다. |SOUND|>(바람 소리)

|START_OF_DIALOGUE|>"조심해서 걸어라." 할머니가 말했다.
|START_OF_DIALOGUE|>"네, 할머니." 손녀가 대답했다.

|START_OF_DIALOGUE|>
호랑이: 떡 하나 주면 안 잡아먹지.
할머니: |SOUND|>(흐느끼는 소리) 여기 있다.
|START_OF_DIALOGUE|>
호랑이: 하나 더.
|END_OF_BOOK|>
"""


def shape(segments) -> list:
    """The tree without positions: what the build renders."""
    out = []
    for s in segments:
        if isinstance(s, Dialogue):
            out.append(("dialogue", [(t.speaker, t.plain) for t in s.turns]))
        elif isinstance(s, Block):
            out.append(("block", s.name, shape(s.segments)))
        else:
            assert isinstance(s, Narration)
            out.append(("narration", s.plain))
    return out


def test_both_spellings_give_the_same_tree():
    closed, start_only = parse_text(CLOSED, "a.txt", REGISTRY), parse_text(START_ONLY, "b.txt", REGISTRY)
    assert closed.diagnostics == []
    assert [d.title for d in start_only.documents] == [d.title for d in closed.documents] == ["두 번째 이야기"]
    assert shape(start_only.documents[0].segments) == shape(closed.documents[0].segments)
    # one-line blocks need nothing; the two multi-line dialogues are closed start-only style, each a warning
    found = [(d.code, d.message) for d in start_only.diagnostics]
    assert found == [("S009", "|START_OF_DIALOGUE|> has no |END_OF_DIALOGUE|>: closed before |START_OF_DIALOGUE|>"),
                     ("S009", "|START_OF_DIALOGUE|> has no |END_OF_DIALOGUE|>: closed before |END_OF_BOOK|>")]


def test_the_safe_fix_writes_the_end_markers_out():
    fixed, applied = fix_text(START_ONLY, "b.txt", REGISTRY, lambda code: True)
    assert applied == ["S009"]
    again = parse_text(fixed, "b.txt", REGISTRY)
    assert again.diagnostics == []
    assert shape(again.documents[0].segments) == shape(parse_text(CLOSED, "a.txt", REGISTRY).documents[0].segments)
    assert fixed.count("|END_OF_DIALOGUE|>") == 2 and "|END_OF_DIALOGUE|>\n|END_OF_BOOK|>" in fixed


def test_require_end_markers_makes_them_errors(tmp_path):
    result = parse_text(START_ONLY, "b.txt", REGISTRY.strict())
    assert {d.code for d in result.diagnostics} == {"S001", "S003"}  # the title swallows what follows, as before
    (tmp_path / "malmungchi.toml").write_text("[lint]\nrequire_end_markers = true\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text(START_ONLY, encoding="utf-8")
    r = CliRunner().invoke(main, ["corpus", "lint", str(tmp_path / "b.txt"), "--output-format", "text"])
    assert r.exit_code == 1 and " S001 " in r.output


def test_speakerless_dialogues_are_a_style_unless_a_file_mixes_them():
    quoted = '|START_OF_DIALOGUE|>"조심해서 걸어라." 할머니가 말했다.|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n'
    assert parse_text(quoted, "q.txt", REGISTRY).diagnostics == []
    mixed = ("|START_OF_DIALOGUE|>\n민지: 안녕?\n|END_OF_DIALOGUE|>\n" * 3) + quoted
    codes = [(d.code, d.line) for d in parse_text(mixed, "m.txt", REGISTRY).diagnostics]
    from malmungchi.corpus.diagnostics import locate

    diags = parse_text(mixed, "m.txt", REGISTRY).diagnostics
    locate(diags, mixed)
    assert [(d.code, d.line) for d in diags] == [("S008", 10)] and codes


def _start_only(text: str) -> str:
    """The sample in the start-only spelling: no END_OF_TITLE (every title is a line), no END_OF_DIALOGUE where the
    next thing is a block START or the book's end (where narration follows, the END stays: it is what ends it)."""
    text = text.replace("|END_OF_TITLE|>", "")
    return re.sub(r"\|END_OF_DIALOGUE\|>\s*(?=\|START_OF_|\|END_OF_BOOK\|>)", "", text)


def test_the_sample_in_start_only_spelling_builds_byte_identical_data(tmp_path, sample_dir, qwen3_tokenizer_dir):
    closed, start_only = tmp_path / "closed" / "kc", tmp_path / "start" / "kc"
    shutil.copytree(sample_dir, closed, ignore=shutil.ignore_patterns("README.md"))
    start_only.mkdir(parents=True)
    removed = 0
    for f in sorted(closed.glob("*.txt")):
        text = f.read_text(encoding="utf-8")
        new = _start_only(text)
        removed += text.count("|END_OF_") - new.count("|END_OF_")
        (start_only / f.name).write_text(new, encoding="utf-8")
    assert removed >= 10

    def build(corpus: Path, out: Path) -> dict:
        r = CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(qwen3_tokenizer_dir),
                                      "--out", str(out), "--max-length", "256"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return json.loads((out / "manifest.json").read_text(encoding="utf-8"))

    a, b = build(closed, tmp_path / "a"), build(start_only, tmp_path / "b")
    assert a["content_hash"] == b["content_hash"]
    for rel in ("data/train.parquet", "data/validation.parquet", "data/test.parquet", "eval/test.jsonl"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert [(d["id"], d["split"], d["tokens"]) for d in a["documents"]] == \
           [(d["id"], d["split"], d["tokens"]) for d in b["documents"]]
    lint = CliRunner().invoke(main, ["corpus", "lint", str(start_only), "--output-format", "text"])
    assert lint.exit_code == 1 and " S001 " not in lint.output and " S003 " not in lint.output
    assert {m for m in re.findall(r" ([A-Z]\d{3}) ", lint.output)} <= {"S009"}


@pytest.mark.parametrize("line", ["|START_OF_TITLE|>두 번째 이야기", "|START_OF_TITLE|> 두 번째 이야기 "])
def test_a_title_line_then_a_dialogue(line):
    text = f"{line}\n\n|START_OF_DIALOGUE|>\n철수: 안녕.\n|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n"
    result = parse_text(text, "t.txt", REGISTRY)
    assert result.diagnostics == []
    (doc,) = result.documents
    assert doc.title == "두 번째 이야기" and shape(doc.segments) == [("dialogue", [("철수", "안녕.")])]


def test_line_start_after_lf_crlf_and_lone_cr():
    """Where a line starts, as `_starts_line` (start-only blocks closed at a START that begins a line) needs it:
    after `\n`, `\r\n` or a lone `\r`, looked up rather than searched back for."""
    from malmungchi.corpus.parse import LineIndex

    text = "ab\ncd\r\nef\rgh"
    index = LineIndex(text)
    assert [index.line_start(i) for i in range(len(text) + 1)] == [0, 0, 0, 3, 3, 3, 3, 7, 7, 7, 10, 10, 10]
