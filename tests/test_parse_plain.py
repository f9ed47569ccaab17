"""The fast path for dialogues of plain lines (text only): its (speaker, text) pairs, the turns it builds when they
are read, and what the renderer writes from it, are those of the general path on any such dialogue."""

from __future__ import annotations

import os
import pickle

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from malmungchi.corpus import Dialogue, Document, Text, parse_text
from malmungchi.corpus.tree import Block
from malmungchi.corpus.parse import _Parser
from malmungchi.prep.policies import Policies
from malmungchi.prep.render import TextRenderer
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry

REGISTRY = default_registry()
SETTINGS = settings(max_examples=int(os.environ.get("MALMUNGCHI_HYPOTHESIS_EXAMPLES", "200")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# pieces of dialogue lines: names and colons (half- and full-width), every kind of space the two paths trim,
# and text that looks like a speaker prefix but is not one
PIECES = ["철수", "영희", "A", "Dr. Kim", "엄마 ", ":", "：", " : ", ": ", "  ", " ", "\t", "\u3000", "\u2028", "\x85",
          "\x0c", "안녕하세요.", "그래? 정말", "a: b", "(웃음)", "말.", "\r\n", "\n", "\r", "\n\n", "\n \n"]
lines = st.lists(st.sampled_from(PIECES), max_size=24).map("".join)


def _dialogues(doc: Document) -> list[Dialogue]:
    return [s for s in doc.segments if isinstance(s, Dialogue)]


def _pairs(renderer: TextRenderer, turns) -> list[tuple[str | None, str]]:
    """(speaker, text) of each turn, as the renderer's general path writes a turn."""
    return [(t.speaker, t.parts[0].text.strip() if len(t.parts) == 1 and t.parts[0].__class__ is Text
             else renderer.inline(t.parts)) for t in turns]


def _renderers() -> list[TextRenderer]:
    return [TextRenderer(Policies(REGISTRY, BuildConfig(speakers=s)), s) for s in ("name", "token", "drop")]


@SETTINGS
@given(body=lines, head=st.sampled_from(["", " ", " 철수: 첫 줄", "\t"]))
@example(body="철수: 안녕\n 이어서\n\n영희:   \n  둘째 줄  \n", head="")
@example(body="혼잣말\n철수: 응", head="")
@example(body="철수:  \n영희: 네", head="")
def test_plain_dialogue_pairs_turns_and_rendering_match_the_general_path(body, head):
    text = f"|START_OF_TITLE|>책|END_OF_TITLE|>\n|START_OF_DIALOGUE|>{head}\n{body}\n|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n"
    parsed = parse_text(text, "a.txt", REGISTRY)
    (doc,) = parsed.documents
    (dialogue,) = _dialogues(doc)
    assert dialogue.plain is not None  # text alone: the fast path
    # the turns it builds are those of the general path over the same text
    parser = _Parser(text, "a.txt", REGISTRY, True)
    start = text.index("|>", text.index("START_OF_DIALOGUE")) + 2
    general = parser._turns([("text", start, text.index("|END_OF_DIALOGUE|>"))])
    assert list(dialogue.turns) == general
    renderers = _renderers()
    assert dialogue.plain == _pairs(renderers[0], dialogue.turns)
    # rendering from the pairs writes what rendering from the turns writes, under every speaker setting
    eager = Document(doc.path, doc.index, doc.title, (Dialogue(dialogue.turns, dialogue.span),), doc.span)
    for renderer in renderers:
        fast, slow = renderer.render(doc, "a.txt"), renderer.render(eager, "a.txt")
        assert (fast.text, fast.cuts, fast.turns, fast.leaf_cuts, fast.speakers) == \
            (slow.text, slow.cuts, slow.turns, slow.leaf_cuts, slow.speakers)


def test_a_dialogue_with_a_cue_takes_the_general_path_and_renders_it():
    text = "|START_OF_DIALOGUE|>\n철수: |SOUND|>(웃음) 응\n영희: 그래\n|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n"
    (dialogue,) = _dialogues(parse_text(text, "a.txt", REGISTRY).documents[0])
    assert dialogue.plain is None
    r = _renderers()[0].render(parse_text(text, "a.txt", REGISTRY).documents[0], "a.txt")
    assert r.text == "<|start_of_dialogue|>\n철수: <|sound|>(웃음) 응\n영희: 그래\n<|end_of_dialogue|>\n\n<|end_of_book|>"
    assert r.markers["SOUND"] == 1 and r.cues[("SOUND", "웃음")] == 1


def test_a_plain_dialogue_compares_hashes_and_pickles_as_its_turns():
    text = "|START_OF_DIALOGUE|>\n철수: 안녕\n 또 보자\n영희: 응\n|END_OF_DIALOGUE|>\n|END_OF_BOOK|>\n"
    lazy = _dialogues(parse_text(text, "a.txt", REGISTRY).documents[0])[0]
    again = _dialogues(parse_text(text, "a.txt", REGISTRY).documents[0])[0]
    eager = Dialogue(again.turns, again.span)
    assert lazy == eager and hash(lazy) == hash(eager)
    copy = pickle.loads(pickle.dumps(lazy))
    assert copy.plain == [("철수", "안녕\n또 보자"), ("영희", "응")]  # across a process pool it stays lazy
    assert copy == eager and [t.speaker for t in copy.turns] == ["철수", "영희"]
    assert copy.turns[0].plain == "안녕\n또 보자"
    assert (copy.turns[0].span.line, copy.turns[1].span.line) == (2, 4)  # spans survive with their lines


# lines that are mostly `이름: text` as the renderer writes them (the verbatim path), and the near misses that are
# not: a name with spaces or a full stop, a full-width colon, two spaces, text ending in a space, a bar
NAMES = ["철수", "영희", "A", "손님", "김 선생", "Dr. Kim", "엄마 ", " 철수", "가" * 20, "가" * 21, "\u3000영희"]
SAID = ["안녕하세요.", "그래? 정말: 응", "a: b", "말 ", " 말", "말\u3000", "(웃음) 좋아", "x|y", "", "ㅋ"]
COLONS = [": ", ":", "：", ":  ", " : ", ":\t"]
good_line = st.tuples(st.sampled_from(NAMES[:6]), st.just(": "), st.sampled_from(SAID[:4]))
any_line = st.tuples(st.sampled_from(NAMES), st.sampled_from(COLONS), st.sampled_from(SAID))
verbatim_lines = st.lists(st.one_of(good_line, good_line, good_line, any_line), min_size=1, max_size=5).map(
    lambda ls: "\n".join(n + c + s for n, c, s in ls))
dialogue_runs = st.lists(st.tuples(verbatim_lines, st.sampled_from(["\n", "\n", "\n", "\n\n", "\n  \n", "\r\n"])),
                         min_size=1, max_size=4)


def _without_verbatim(monkeypatch, text: str, registry=REGISTRY):
    from malmungchi.corpus import parse

    with monkeypatch.context() as m:
        m.setattr(parse, "VERBATIM", parse.re.compile(r"(?!)"))  # matches nothing: every dialogue the old way
        return parse_text(text, "a.txt", registry)


def _chapters():
    return REGISTRY.with_extras({"CHAPTER": {"kind": "block", "description": "장"},
                                 "DIALOGUE": {"kind": "block", "description": "대화", "inside": ["BOOK", "CHAPTER"]}})


CHAPTERS = _chapters()  # dialogues inside a registered block: rendered through `_block`, not in runs


VERBATIM_SETTINGS = settings(SETTINGS, suppress_health_check=[HealthCheck.too_slow,
                                                              HealthCheck.function_scoped_fixture])


@VERBATIM_SETTINGS
@given(run=dialogue_runs, between=st.sampled_from(["\n\n", "\n", "\n\n문단 하나.\n\n", "\n|SOUND|>(박수)\n"]),
       opening=st.sampled_from(["", "|START_OF_TITLE|>책|END_OF_TITLE|>\n\n", "첫 문단\n"]),
       chapter=st.booleans())
@example(run=[("철수: 안녕\n영희: 응", "\n")], between="\n\n", opening="", chapter=True)
@example(run=[("철수: 안녕", "\n"), ("영희: 응", "\n"), ("혼잣말", "\n")], between="\n\n", opening="",
         chapter=False)  # S008
@example(run=[("철수: 안녕", "\n"), ("영희: 응", "\n"), ("A: b", "\n")], between="\n|SOUND|>(박수)\n", opening="",
         chapter=False)
def test_dialogues_copied_verbatim_render_as_the_general_path_does(monkeypatch, run, between, opening, chapter):
    """Dialogues whose lines are their turns as written are copied, not rebuilt (`parse.VERBATIM`): under every
    marker policy and speaker setting, alone, in runs, between other segments and inside a registered block,
    they render exactly as the dialogues the general path makes, and their pairs are the same."""
    blocks = between.join(f"|START_OF_DIALOGUE|>{nl}{lines}{nl}|END_OF_DIALOGUE|>" for lines, nl in run)
    if chapter:
        blocks = f"|START_OF_CHAPTER|>\n{blocks}\n|END_OF_CHAPTER|>"
    text = opening + blocks + "\n|END_OF_BOOK|>\n"
    registry = CHAPTERS if chapter else REGISTRY
    fast_parse, slow_parse = parse_text(text, "a.txt", registry), _without_verbatim(monkeypatch, text, registry)
    assert [(d.code, d.offset, d.end_offset) for d in fast_parse.diagnostics] == \
        [(d.code, d.offset, d.end_offset) for d in slow_parse.diagnostics]  # S008 counts them as dialogues with speakers
    (fast,), (slow,) = fast_parse.documents, slow_parse.documents
    assert fast == slow
    inner = (lambda doc: [d for s in doc.segments if isinstance(s, Block) for d in _dialogues(s)]) if chapter \
        else _dialogues
    for d, e in zip(inner(fast), inner(slow)):
        assert e.verbatim is None and d.plain == e.plain
    for cfg in (BuildConfig(speakers=s, default_policy=p) for s in ("name", "token", "drop")
                for p in ("special", "text", "strip", "drop")):
        renderer = TextRenderer(Policies(registry, cfg), cfg.speakers)
        a, b = renderer.render(fast, "a.txt"), renderer.render(slow, "a.txt")
        assert (a.text, a.cuts, a.turns, a.leaf_cuts, a.speakers, a.markers, a.max_speakers) == \
            (b.text, b.cuts, b.turns, b.leaf_cuts, b.speakers, b.markers, b.max_speakers)


def test_the_usual_dialogue_is_copied_verbatim_and_its_near_misses_are_not():
    def verbatim(block: str) -> bool:
        doc = parse_text(f"|START_OF_DIALOGUE|>\n{block}\n|END_OF_DIALOGUE|>\n", "a.txt", REGISTRY).documents[0]
        return _dialogues(doc)[0].verbatim is not None

    assert verbatim("손님: 안녕하세요.\n챗봇: 네, 반가워요: 정말로.")
    in_chapter = parse_text("|START_OF_CHAPTER|>\n|START_OF_DIALOGUE|>\n철수: 안녕\n|END_OF_DIALOGUE|>\n"
                            "|END_OF_CHAPTER|>\n|END_OF_BOOK|>\n", "a.txt", CHAPTERS)
    assert in_chapter.diagnostics == [] and _dialogues(in_chapter.documents[0].segments[0])[0].verbatim is not None
    assert verbatim("Dr. Kim: hi") is False  # a full stop ends no name: the general path decides
    for near in ("철수:  두 칸", "철수：전각", "철수 : 띄움", "철수: 끝에 공백 ", "철수: 안녕\n\n영희: 응", "혼잣말",
                 "철수: a|b", "철수: 안녕\r\n영희: 응"):
        assert not verbatim(near), near
