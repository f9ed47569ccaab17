"""The document tree `parse_text` builds: books, titles, narration, dialogue turns, sounds, cues and spans."""

from __future__ import annotations

import pytest

from malmungchi.corpus import Block, Cue, Dialogue, Narration, Sound, Text, Turn, parse_text
from malmungchi.schemas.config import Config
from malmungchi.schemas.registry import default_registry

REGISTRY = default_registry()

BOOK = (
    "|START_OF_TITLE|>비 오는 날|END_OF_TITLE|>\n"   # line 1
    "첫 문단 첫 줄.\n"                                 # 2
    "첫 문단 둘째 줄 |SOUND|>(빗소리) 끝.\n"           # 3
    "  \n"                                             # 4: blank (spaces only)
    "둘째 문단 |SOUND|>.\n"                            # 5
    "|START_OF_DIALOGUE|>\n"                           # 6
    "혼잣말로 시작.\n"                                 # 7: speaker-less first line
    "철수: 안녕?\n"                                    # 8
    " 이어지는 말.\n"                                  # 9: continuation
    "영희: |SOUND|>(웃음) 응.\n"                       # 10
    "|END_OF_DIALOGUE|>\n"                             # 11
    "|END_OF_BOOK|>\n"                                 # 12
    "|START_OF_TITLE|>둘째 책|END_OF_TITLE|>\n"        # 13
    "끝나지 않은 책.\n"                                # 14
)


@pytest.fixture(scope="module")
def parsed():
    return parse_text(BOOK, "a.txt", REGISTRY)


def _at(text: str, span) -> str:
    return text[span.start:span.end]


def _all_spans(node):
    yield node.span
    for child in getattr(node, "segments", ()) + getattr(node, "turns", ()) + getattr(node, "parts", ()):
        yield from _all_spans(child)


def test_books_titles_and_termination(parsed):
    docs = parsed.documents
    assert [(d.index, d.title, d.terminated) for d in docs] == [(0, "비 오는 날", True), (1, "둘째 책", False)]
    assert [d.id for d in docs] == ["a.txt#0", "a.txt#1"]
    assert [t for t, _ in parsed.titles] == ["비 오는 날", "둘째 책"]
    assert docs[0].span.start == 0 and _at(BOOK, docs[0].span).endswith("|END_OF_BOOK|>")
    assert _at(BOOK, docs[1].span).strip().startswith("|START_OF_TITLE|>둘째 책")
    assert docs[1].span.end == len(BOOK)
    # the unterminated second book is a finding, not a crash; its one speaker-less dialogue is a style, not a typo
    assert [d.code for d in parsed.diagnostics] == ["S006"]


def test_narration_is_split_at_blank_lines(parsed):
    first, second, dialogue = parsed.documents[0].segments
    assert isinstance(first, Narration) and isinstance(second, Narration) and isinstance(dialogue, Dialogue)
    assert first.plain == "첫 문단 첫 줄.\n첫 문단 둘째 줄  끝."
    assert [type(p) for p in first.parts] == [Text, Sound, Text]
    assert first.parts[1].cue == "빗소리"
    assert second.plain == "둘째 문단 ."
    assert second.parts[1] == Sound(None, second.parts[1].span)  # SOUND without a cue
    assert _at(BOOK, second.parts[1].span) == "|SOUND|>"
    assert _at(BOOK, first.parts[1].span) == "|SOUND|>(빗소리)"  # the cue belongs to the sound


def test_dialogue_turns_speakers_and_continuations(parsed):
    dialogue = parsed.documents[0].segments[2]
    turns = dialogue.turns
    assert [(t.speaker, t.plain) for t in turns] == [
        (None, "혼잣말로 시작."),
        ("철수", "안녕?\n이어지는 말."),
        ("영희", " 응."),
    ]
    assert all(isinstance(t, Turn) for t in turns)
    sound = turns[2].parts[0]
    assert isinstance(sound, Sound) and sound.cue == "웃음"
    assert (sound.span.line, sound.span.column) == (10, 5)
    assert _at(BOOK, dialogue.span).startswith("|START_OF_DIALOGUE|>")
    assert _at(BOOK, dialogue.span).endswith("|END_OF_DIALOGUE|>")


def test_spans_point_at_their_text(parsed):
    lines = BOOK.split("\n")
    for doc in parsed.documents:
        for span in _all_spans(doc):
            assert span.path == "a.txt"
            assert 0 <= span.start <= span.end <= len(BOOK)
            # line/column agree with the offsets
            assert sum(len(x) + 1 for x in lines[:span.line - 1]) + span.column - 1 == span.start
            assert sum(len(x) + 1 for x in lines[:span.end_line - 1]) + span.end_column - 1 == span.end
        for seg in doc.segments:
            for unit in (seg.turns if isinstance(seg, Dialogue) else (seg,)):
                for part in unit.parts:
                    if isinstance(part, Text) and part.span.end > part.span.start:
                        assert _at(BOOK, part.span) == part.text
    turn = parsed.documents[0].segments[2].turns[1]
    assert (turn.span.line, turn.span.column, turn.span.end_line, turn.span.end_column) == (8, 5, 9, 9)
    assert _at(BOOK, turn.span) == "안녕?\n 이어지는 말."
    para = parsed.documents[0].segments[0]
    assert (para.span.line, para.span.column, para.span.end_line, para.span.end_column) == (2, 1, 3, 27)


def test_blank_line_forms_split_paragraphs():
    for blank in ("\n\n", "\r\n\r\n", "\n \t\n", "\r\r", "\n\n\n\n"):
        text = f"가{blank}나\n|END_OF_BOOK|>"
        (doc,) = parse_text(text, "b.txt", REGISTRY).documents
        assert [s.plain for s in doc.segments] == ["가", "나"], repr(blank)


def test_several_books_and_empty_ones():
    text = "첫 책.\n|END_OF_BOOK|>\n\n|END_OF_BOOK|>\n둘째 책.\n|END_OF_BOOK|>\n"
    result = parse_text(text, "c.txt", REGISTRY)
    assert [(d.index, d.segments[0].plain, d.title) for d in result.documents] == [(0, "첫 책.", None), (1, "둘째 책.", None)]
    assert all(d.terminated for d in result.documents)
    assert result.diagnostics == []


def test_file_without_end_of_book_is_one_unterminated_book():
    result = parse_text("가.\n\n나.\n", "d.txt", REGISTRY)
    (doc,) = result.documents
    assert not doc.terminated and [s.plain for s in doc.segments] == ["가.", "나."]
    assert [d.code for d in result.diagnostics] == ["S007"]


def test_speaker_rules():
    text = ("|START_OF_DIALOGUE|>\n"
            "김 선생님: 안녕하세요.\n"          # a name may hold a space
            "시간은 3:15였다.\n"                 # no space after ':' -> not a speaker, a continuation
            "그가 말했다. 정말: 그래\n"          # sentence punctuation -> not a speaker
            "아주아주아주아주아주아주아주아주아주아주긴이름: 너무 길다\n"  # over 20 characters
            "영희：전각 콜론도 된다\n"            # full-width colon needs the space too -> continuation
            "민수 ： 됩니다\n"
            "|END_OF_DIALOGUE|>\n|END_OF_BOOK|>")
    (doc,) = parse_text(text, "e.txt", REGISTRY).documents
    turns = doc.segments[0].turns
    assert [t.speaker for t in turns] == ["김 선생님", "민수"]
    assert turns[0].plain.split("\n") == ["안녕하세요.", "시간은 3:15였다.", "그가 말했다. 정말: 그래",
                                          "아주아주아주아주아주아주아주아주아주아주긴이름: 너무 길다",
                                          "영희：전각 콜론도 된다"]


def test_dialogue_opening_on_the_marker_line():
    text = "|START_OF_DIALOGUE|>철수: 안녕.\n영희: 응.|END_OF_DIALOGUE|>\n|END_OF_BOOK|>"
    result = parse_text(text, "f.txt", REGISTRY)
    assert [(t.speaker, t.plain) for t in result.documents[0].segments[0].turns] == [("철수", "안녕."), ("영희", "응.")]
    assert result.diagnostics == []


def test_unclosed_and_nested_blocks_still_build_a_tree():
    text = "|START_OF_DIALOGUE|>\n철수: |START_OF_DIALOGUE|>안녕\n|END_OF_BOOK|>\n다음 책.\n|END_OF_BOOK|>"
    result = parse_text(text, "g.txt", REGISTRY)
    # the inner START has text after it: a one-line block (S003 where it stands); the outer one closes at the
    # book's end, start-only style (S009)
    assert sorted(d.code for d in result.diagnostics) == ["S003", "S009"]
    assert len(result.documents) == 2 and result.documents[1].segments[0].plain == "다음 책."
    strict = parse_text(text, "g.txt", REGISTRY.strict())
    assert sorted(d.code for d in strict.diagnostics) == ["S001", "S001", "S003"]
    assert len(strict.documents) == 2 and strict.documents[1].segments[0].plain == "다음 책."


def test_custom_block_and_inline_markers_from_config():
    config = Config.model_validate({"markers": {
        "LAUGH": {"kind": "inline", "description": "웃음", "inside": ["BOOK", "DIALOGUE", "CHAPTER"]},
        "CHAPTER": {"kind": "block", "description": "장"},
    }})
    text = ("|START_OF_CHAPTER|>장 안의 글 |LAUGH|>(하하).\n|END_OF_CHAPTER|>\n"
            "|START_OF_DIALOGUE|>\n철수: |LAUGH|>\n|END_OF_DIALOGUE|>\n|END_OF_BOOK|>")
    result = parse_text(text, "h.txt", config.registry())
    assert result.diagnostics == []
    chapter, dialogue = result.documents[0].segments
    assert isinstance(chapter, Block) and chapter.name == "CHAPTER"
    (para,) = chapter.segments
    laugh = para.parts[1]
    assert laugh == Cue("LAUGH", "하하", laugh.span)
    assert text[laugh.span.start:laugh.span.end] == "|LAUGH|>(하하)"
    assert text[chapter.span.start:chapter.span.end].endswith("|END_OF_CHAPTER|>")
    (turn,) = dialogue.turns
    assert turn.speaker == "철수" and turn.parts[0].name == "LAUGH" and turn.parts[0].cue is None
    # without the config the same text is full of unknown markers
    codes = {d.code for d in parse_text(text, "h.txt", REGISTRY).diagnostics}
    assert "M001" in codes


def test_custom_marker_outside_its_contexts_is_a_nesting_error():
    config = Config.model_validate({"markers": {"LAUGH": {"kind": "inline", "inside": ["DIALOGUE"]}}})
    result = parse_text("웃음 |LAUGH|>\n|END_OF_BOOK|>", "i.txt", config.registry())
    assert [(d.code, d.offset) for d in result.diagnostics] == [("S003", 3)]


def test_tree_false_reports_the_same_diagnostics_without_documents():
    with_tree = parse_text(BOOK, "a.txt", REGISTRY)
    without = parse_text(BOOK, "a.txt", REGISTRY, tree=False)
    assert without.documents == []
    assert [(d.code, d.offset) for d in without.diagnostics] == [(d.code, d.offset) for d in with_tree.diagnostics]
    assert without.books == with_tree.books and len(without.books) == 2
