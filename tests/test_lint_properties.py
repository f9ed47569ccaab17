"""Property tests: lint and fix never crash on any bytes or any mix of marker fragments, every position they
report lies inside the file, and `--fix` reaches a fixed point in one run."""

from __future__ import annotations

import os
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from malmungchi.corpus.fix import apply, fix_file
from malmungchi.corpus.lint import lint_file
from malmungchi.corpus.rules import FixSafety
from malmungchi.corpus.source import UTF8_BOM, decode
from malmungchi.schemas.registry import default_registry

REGISTRY = default_registry()
# MALMUNGCHI_HYPOTHESIS_EXAMPLES=5000 for a longer hunt; 200 keeps the run within a few seconds
SETTINGS = settings(max_examples=int(os.environ.get("MALMUNGCHI_HYPOTHESIS_EXAMPLES", "200")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

NAMES = ["START_OF_TITLE", "END_OF_TITLE", "START_OF_DIALOGUE", "END_OF_DIALOGUE", "END_OF_BOOK", "SOUND"]
FRAGMENTS = (
    ["|", "<", ">", "|>", "<|", "|", " ", "  ", "\t", ":", ".", "(", ")", "(웃음)", "이름: ", "철수: ", "영희:", "X: "]
    + NAMES + [n.lower() for n in NAMES] + [n.replace("_", " ") for n in NAMES]
    + ["SOUNDS", "START_OF_TITEL", "CHAPTER", "A", "a1"]
    + ["가", "한글", "말뭉치", unicodedata.normalize("NFD", "한글"), "\u1100", "\u1161", "\u11ab"]
    + ["\u200b", "\u200d", "\u00ad", "\ufeff", "\u2060", "\x1b", "\x08", "\x7f", "\ufffd", "\u2028", "\x85", "\x0c"]
    + ["\n", "\r", "\r\n", "\n\n", "\r\n\r\n", "\n \n"]
)
# dense: few, short fragments, so neighbouring candidates (`|SOUND|sound|>`) come up often
DENSE = ["|", "|", "|>", "<", ">", " ", "\n", "가", "SOUND", "sound", "SOUNDS", "START_OF_TITLE", "END_OF_TITLE",
         "start of dialogue", "END_OF_BOOK"]
dense = st.lists(st.sampled_from(DENSE), max_size=16).map("".join)
broad = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=60).map("".join)
soup = st.one_of(dense, broad)
soup_bytes = st.tuples(st.booleans(), soup).map(lambda bt: (UTF8_BOM if bt[0] else b"") + bt[1].encode("utf-8"))
SUFFIXES = st.sampled_from([".txt", ".txt", ".txt", ".jsonl", ".csv", ".tsv"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("props")


def _lines_of(data: bytes) -> list[str]:
    """The file's lines as the linter counts them: ended by LF, CRLF or a lone CR, and without the BOM."""
    decoded = decode(data, "x")
    text = decoded.text if decoded.text is not None else data.removeprefix(UTF8_BOM).decode("utf-8", "replace")
    return re.split(r"\r\n|\r|\n", text)


def _assert_positions_inside(diagnostics, data: bytes) -> None:
    lines = _lines_of(data)
    for d in diagnostics:
        for line, col in ((d.line, d.column), (d.end_line, d.end_column)):
            assert 1 <= line <= len(lines), (d, len(lines))
            assert 1 <= col <= len(lines[line - 1]) + 1, (d, lines[line - 1])
        assert (d.line, d.column) <= (d.end_line, d.end_column), d


def _check(path, data: bytes) -> None:
    path.write_bytes(data)
    first = lint_file(str(path), REGISTRY)
    _assert_positions_inside(first.diagnostics, data)
    for d in first.diagnostics:
        assert d.path == str(path)
        d.to_dict()  # every diagnostic serialises

    fixed = fix_file(str(path), REGISTRY, select=["ALL"], ignore=[], unsafe=False)
    if fixed is not None and fixed.changed:
        apply(fixed)
    after = path.read_bytes()
    second = lint_file(str(path), REGISTRY)
    _assert_positions_inside(second.diagnostics, after)
    left = [d for d in second.diagnostics if d.fix_safety is FixSafety.safe]
    assert not left, (data, after, left)
    again = fix_file(str(path), REGISTRY, select=["ALL"], ignore=[], unsafe=False)
    assert again is None or not again.changed, (after, again.after)


@SETTINGS
@given(data=st.binary(max_size=400), suffix=SUFFIXES)
@example(data=b"\x81A\xe6\xf5", suffix=".txt")  # CP949 with a text problem: no safe fix may be offered
def test_random_bytes_never_crash_and_fix_is_idempotent(folder, data, suffix):
    _check(folder / f"bytes{suffix}", data)


@SETTINGS
@given(data=soup_bytes, suffix=SUFFIXES)
@example(data="|SOUND|sound|>\n".encode(), suffix=".txt")  # one rewrite completes the next candidate
@example(data=b"\xef\xbb\xbf\xef\xbb\xbf| start of title |>\r\n\n", suffix=".txt")
@example(data=b"\r|", suffix=".txt")  # a lone CR ends a line: the diagnostic after it is on line 2
def test_marker_soup_never_crashes_and_fix_is_idempotent(folder, data, suffix):
    _check(folder / f"soup{suffix}", data)


@SETTINGS
@given(text=soup)
@example(text="|SOUND|SOUND|>")
@example(text="\r|START OF TITLE|")  # S009's inserted END must use the file's line ending (CR here)
def test_unsafe_fix_also_reaches_a_fixed_point(folder, text):
    path = folder / "unsafe.txt"
    path.write_bytes(text.encode("utf-8"))
    fixed = fix_file(str(path), REGISTRY, select=["ALL"], ignore=[], unsafe=True)
    if fixed is not None and fixed.changed:
        apply(fixed)
    again = fix_file(str(path), REGISTRY, select=["ALL"], ignore=[], unsafe=True)
    assert again is None or not again.changed, (text, path.read_bytes(), again and again.after)
    left = [d for d in lint_file(str(path), REGISTRY).diagnostics if d.fix_safety is not None]
    assert not left, left


def test_long_lines_are_found_at_their_start_whatever_ends_them():
    from malmungchi.corpus.diagnostics import locate
    from malmungchi.corpus.lint import long_lines

    text = "abcde\r\nab\rabcdef\nabcd\r\n\r\nxxxxx"  # lines of 5, 2, 6, 4, 0 and 5 characters; CRLF, CR and LF
    found = long_lines(text, "a.txt", limit=5)
    locate(found, text)
    assert [(d.code, d.line, d.column, d.message.split(":")[0]) for d in found] == [
        ("F008", 1, 1, "line of 5 characters"), ("F008", 3, 1, "line of 6 characters"),
        ("F008", 6, 1, "line of 5 characters")]
    assert long_lines("abcd\nabcd", "a.txt", limit=5) == []


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["\n", "\r\n", "\r"])), max_size=12),
       st.integers(1, 13))
@example([(0, "\n"), (6, "\n")], 5)  # a line longer than the limit, across two blocks of the limit's size
@example([(3, "\r"), (9, "\r\n"), (2, "\n")], 8)
def test_long_lines_finds_every_line_of_the_limit_or_more(lines, limit):
    # long_lines first looks for a line break in every block of limit/2 characters: a long line across blocks
    # must still be found
    from malmungchi.corpus.lint import long_lines

    text = "".join("가" * n + end for n, end in lines)
    want, at = [], 0
    for n, end in lines:
        if n >= limit:
            want.append(at)
        at += n + len(end)
    assert [d.offset for d in long_lines(text, "a.txt", limit=limit)] == (want if len(text) >= limit else [])
