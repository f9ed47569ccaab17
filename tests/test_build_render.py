"""Rendering policies on a small literal document: each policy's exact text."""

from __future__ import annotations

import pytest

from malmungchi.corpus.parse import parse_text
from malmungchi.prep.policies import Policies
from malmungchi.prep.render import TextRenderer
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry

DOC = """|START_OF_TITLE|>제목|END_OF_TITLE|>

첫 문단 |SOUND|>(웃음) 끝.

|START_OF_DIALOGUE|>
철수: 안녕 |SOUND|> 하하.
영희: 응.
|END_OF_DIALOGUE|>
|END_OF_BOOK|>
"""


def render(**cfg):
    reg = default_registry()
    doc = parse_text(DOC, "t.txt", reg).documents[0]
    c = BuildConfig(**cfg)
    return TextRenderer(Policies(reg, c), c.speakers).render(doc, "t.txt")


@pytest.mark.parametrize("cfg, expected", [
    ({}, "<|start_of_title|>제목<|end_of_title|>\n\n첫 문단 <|sound|>(웃음) 끝.\n\n<|start_of_dialogue|>\n"
         "철수: 안녕 <|sound|> 하하.\n영희: 응.\n<|end_of_dialogue|>\n\n<|end_of_book|>"),
    ({"default_policy": "text"}, "|START_OF_TITLE|>제목|END_OF_TITLE|>\n\n첫 문단 |SOUND|>(웃음) 끝.\n\n"
     "|START_OF_DIALOGUE|>\n철수: 안녕 |SOUND|> 하하.\n영희: 응.\n|END_OF_DIALOGUE|>\n\n|END_OF_BOOK|>"),
    ({"default_policy": "strip"}, "제목\n\n첫 문단 (웃음) 끝.\n\n철수: 안녕 하하.\n영희: 응."),
    ({"default_policy": "strip", "policies": {"SOUND": "drop"}}, "제목\n\n첫 문단 끝.\n\n철수: 안녕 하하.\n영희: 응."),
    ({"default_policy": "drop"}, "첫 문단 끝."),
    ({"default_policy": "strip", "policies": {"SOUND": 'replace:"[소리]"'}},
     "제목\n\n첫 문단 [소리](웃음) 끝.\n\n철수: 안녕 [소리] 하하.\n영희: 응."),
    ({"default_policy": "strip", "speakers": "token"},
     "제목\n\n첫 문단 (웃음) 끝.\n\n<|speaker_1|>안녕 하하.\n<|speaker_2|>응."),
    ({"default_policy": "strip", "speakers": "drop"}, "제목\n\n첫 문단 (웃음) 끝.\n\n안녕 하하.\n응."),
])
def test_policy_renders_exact_text(cfg, expected):
    assert render(**cfg).text == expected


def test_cuts_are_segment_starts_and_turns_are_located():
    r = render(default_policy="strip")
    starts = [r.text[c:c + 4] for c in r.cuts]
    assert starts == ["첫 문단", "철수: ", "영희: "]
    (s, c, e), (s2, c2, e2) = r.turns
    assert r.text[s:c] == "철수: " and r.text[c:e] == "안녕 하하."
    assert r.text[c2:e2] == "응."
    assert r.markers["SOUND"] == 2 and r.markers["START_OF_DIALOGUE"] == 1


def test_speaker_tokens_are_per_dialogue_and_named():
    r = render(speakers="token")
    assert r.speakers == [{"<|speaker_1|>": "철수", "<|speaker_2|>": "영희"}]
    assert r.max_speakers == 2


def test_unknown_policy_and_marker_are_rejected():
    with pytest.raises(ValueError, match="did you mean 'strip'"):
        BuildConfig(default_policy="strp")
    with pytest.raises(ValueError, match="SOUND"):
        Policies(default_registry(), BuildConfig(policies={"SOUNDS": "drop"}))
