"""The normalizer as a pure function: Korean edge cases per tier, reasoning removal, end markers, char F1."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from malmungchi.eval.normalize import (
    NORMALIZER_VERSION,
    Normalizer,
    char_f1,
    cut_at_end_marker,
    strip_reasoning,
)

NFD = unicodedata.normalize("NFD", "한국어")
assert NFD != "한국어" and len(NFD) > 3  # really decomposed: jamo, not syllables

N = Normalizer()

# prediction, gold (str or list), expected (em_strict, em_normalized, em_lenient)
CASES = [
    pytest.param("서울", "서울", (1, 1, 1), id="identical"),
    pytest.param("  서울\n", "서울", (1, 1, 1), id="surrounding-whitespace"),
    pytest.param(NFD, "한국어", (0, 1, 1), id="nfd-vs-nfc"),
    pytest.param("한국어", NFD, (0, 1, 1), id="nfc-vs-nfd-gold"),
    pytest.param("ＡＢＣ１２３", "ABC123", (0, 1, 1), id="full-width-ascii"),
    pytest.param("대한\u3000민국", "대한 민국", (0, 1, 1), id="ideographic-space"),
    pytest.param("대한\u200b민국", "대한민국", (0, 1, 1), id="zero-width-space"),
    pytest.param("\ufeff대한민국", "대한민국", (0, 1, 1), id="bom-inside"),
    pytest.param("\u200b 대한민국", "대한민국", (0, 1, 1), id="zero-width-then-space"),
    pytest.param("나는  학교에\t간다", "나는 학교에 간다", (0, 1, 1), id="whitespace-runs"),
    pytest.param("나는 학교에간다", "나는 학교에 간다", (0, 0, 1), id="spacing-difference"),
    pytest.param("서울입니다.", "서울입니다", (0, 0, 1), id="final-period"),
    pytest.param("「서울」", "서울", (0, 0, 1), id="corner-brackets"),
    pytest.param("Seoul", "seoul", (0, 0, 1), id="case"),
    pytest.param("학교에", "학교를", (0, 0, 0), id="particle-에-vs-를"),
    pytest.param("사과", "사과를", (0, 0, 0), id="missing-particle"),
    pytest.param("사과를", "사과", (0, 0, 0), id="extra-particle"),
    pytest.param("먹었다", "먹는다", (0, 0, 0), id="tense"),
    pytest.param("답<|im_end|>쓰레기", "답", (1, 1, 1), id="im_end-cut"),
    pytest.param("답<|endoftext|><|endoftext|>", "답", (1, 1, 1), id="endoftext-cut"),
    pytest.param("답</s>더", "답", (1, 1, 1), id="eos-s-cut"),
    pytest.param("답<end_of_turn>\n<start_of_turn>user", "답", (1, 1, 1), id="gemma-end-of-turn"),
    pytest.param("답<|eot_id|>", "답", (1, 1, 1), id="llama3-eot"),
    pytest.param("<|im_end|>답", "답", (0, 0, 0), id="marker-first-means-empty"),
    pytest.param("<think>\n수도를 묻는다.\n</think>\n\n서울", "서울", (1, 1, 1), id="think-block"),
    pytest.param("<think>\n\n</think>\n\n서울<|im_end|>", "서울", (1, 1, 1), id="empty-think-and-eos"),
    pytest.param("<think>아직 생각 중인데 길이가", "서울", (0, 0, 0), id="unclosed-think"),
    pytest.param("생각은 프롬프트에서 시작</think>서울", "서울", (1, 1, 1), id="orphan-close-think"),
    pytest.param("서울<|im_end|>\n<|im_start|>user\n다음</think>부산", "서울", (1, 1, 1), id="think-after-end-ignored"),
    pytest.param("네", ["예", "네"], (1, 1, 1), id="multiple-golds-second"),
    pytest.param("네.", ["예", "네"], (0, 0, 1), id="multiple-golds-lenient"),
    pytest.param("아니요", ["예", "네"], (0, 0, 0), id="multiple-golds-none"),
    pytest.param("|SOUND|>(웃음) 하하", "|SOUND|>(웃음) 하하", (1, 1, 1), id="markers-kept-both-sides"),
    pytest.param("하하", "<|sound|> 하하", (0, 0, 0), id="marker-missing-is-wrong"),
    pytest.param("", "", (1, 1, 1), id="both-empty"),
    pytest.param("", "서울", (0, 0, 0), id="empty-prediction"),
]


@pytest.mark.parametrize("prediction, gold, expected", CASES)
def test_tiers(prediction, gold, expected):
    golds = gold if isinstance(gold, list) else [gold]
    s = N.score(prediction, golds)
    assert (s.em_strict, s.em_normalized, s.em_lenient) == expected


def test_tiers_are_nested_on_the_table():
    for case in CASES:
        prediction, gold, _ = case.values
        s = N.score(prediction, gold if isinstance(gold, list) else [gold])
        assert s.em_strict <= s.em_normalized <= s.em_lenient


def test_missing_prediction_scores_zero_everywhere():
    s = N.score(None, ["서울"])
    assert (s.em_strict, s.em_normalized, s.em_lenient, s.char_f1) == (0, 0, 0, 0.0)
    assert s.fixed_by == ()


def test_drop_markers():
    dropping = Normalizer(drop_markers=True)
    assert dropping.score("하하", ["<|sound|> 하하"]).em_strict == 1
    assert dropping.score("|SOUND|>하하", ["하하"]).em_strict == 1
    assert dropping.score("하하 |LAUGH|> 호호", ["하하 호호"]).em_normalized == 1
    assert dropping.score("하하 |LAUGH|> 호호", ["하하 호호"]).em_strict == 0  # two spaces left: normalized fixes
    assert "markers" in dropping.step_names and "markers" not in N.step_names


def test_tokenizer_end_markers_are_added_to_the_fixed_ones():
    custom = Normalizer(end_markers=("<|END|>",))
    assert custom.score("답<|END|>꼬리", ["답"]).em_strict == 1
    assert custom.score("답<|im_end|>꼬리", ["답"]).em_strict == 1  # the fixed list still applies
    assert N.score("답<|END|>꼬리", ["답"]).em_strict == 0


def test_fixed_by_names_the_step_that_made_it_right():
    assert N.score(NFD, ["한국어"]).fixed_by == ("nfc",)
    assert N.score("ＡＢＣ", ["ABC"]).fixed_by == ("full_width",)
    assert N.score("서울.", ["서울"]).fixed_by == ("punctuation",)
    assert N.score("답<|im_end|>", ["답"]).fixed_by == ("end_marker",)
    assert N.score(" 답", ["답"]).fixed_by == ("trim",)
    assert N.score("<think>x</think>답", ["답"]).fixed_by == ("reasoning",)
    assert N.score("답", ["답"]).fixed_by == ()  # right from the start: no step gets the credit


def test_reasoning_removed_is_reported():
    assert N.score("<think>a</think>답", ["답"]).reasoning_removed
    assert not N.score("답", ["답"]).reasoning_removed


@pytest.mark.parametrize("text, expected, removed", [
    ("<think>생각</think>답", "답", True),
    ("<think>하나</think>답<think>둘</think>", "답", True),
    ("  <think>끝나지 않은 생각", "", True),
    ("생각</think>\n답", "\n답", True),
    ("답 <think> 뒤", "답 <think> 뒤", False),  # not leading: left alone (and then wrong)
    ("답", "답", False),
])
def test_strip_reasoning(text, expected, removed):
    assert strip_reasoning(text) == (expected, removed)


def test_cut_at_earliest_marker():
    assert cut_at_end_marker("a</s>b<|im_end|>c", ["<|im_end|>", "</s>"]) == "a"
    assert cut_at_end_marker("abc", ["<|im_end|>"]) == "abc"


@pytest.mark.parametrize("prediction, gold, expected", [
    ("서울", "서울", 1.0),
    ("서울시", "서울", 0.8),  # precision 2/3, recall 1
    ("부산", "서울", 0.0),
    ("", "", 1.0),
    ("", "서울", 0.0),
    ("aab", "ab", 0.8),  # multiset: the second a does not count twice
])
def test_char_f1(prediction, gold, expected):
    assert char_f1(prediction, gold) == pytest.approx(expected)


def test_char_f1_uses_lenient_strings_and_best_gold():
    s = N.score("서울시.", ["부산", "서울"])
    assert s.char_f1 == pytest.approx(0.8)
    assert s.best_gold == "서울"


def test_version_is_an_int():
    assert isinstance(NORMALIZER_VERSION, int) and NORMALIZER_VERSION >= 1


_PLAIN = list("가나다 한국어.,!?　\u200bＡａAa\t\n") + [NFD]
_plain = st.lists(st.sampled_from(_PLAIN), max_size=12).map("".join)
_text = st.lists(st.sampled_from(_PLAIN + ["<|im_end|>", "<think>", "</think>"]), max_size=12).map("".join)


@given(_text)
def test_tier_forms_are_idempotent(text):
    for tier in ("em_strict", "em_normalized", "em_lenient"):
        once = N.tier(text, tier, prediction=False)
        assert N.tier(once, tier, prediction=False) == once


@given(_plain, _plain)
def test_scores_are_symmetric_in_the_gold_side_steps(a, b):
    """Without prediction-only steps in play, swapping the sides changes nothing."""
    s1, s2 = N.score(a, [b]), N.score(b, [a])
    assert (s1.em_strict, s1.em_normalized, s1.em_lenient) == (s2.em_strict, s2.em_normalized, s2.em_lenient)
    assert s1.char_f1 == pytest.approx(s2.char_f1)


@given(_plain, _text)
def test_anything_after_an_end_marker_is_ignored(answer, junk):
    assert N.score(answer + "<|im_end|>" + junk, [answer]).em_strict == 1
