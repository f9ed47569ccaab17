"""The fast path for dialogues of plain lines (text only): its (speaker, text) pairs, the turns it builds when they
are read, and what the renderer writes from it, are those of the general path on any such dialogue."""

from __future__ import annotations

import os
import pickle

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from malmungchi.corpus import Dialogue, Document, Text, parse_text
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
