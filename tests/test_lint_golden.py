"""Golden tests: one fixture per rule code, linted through the CLI, compared with its committed output.

Regenerate the expected files with `MALMUNGCHI_UPDATE_GOLDEN=1 python -m pytest tests/test_lint_golden.py`, then
review every changed `.expected` by eye (the line:col must point at the defect). Fixtures with odd bytes are
written by `tests/fixtures/lint/make_fixtures.py`.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.corpus.rules import RULES

FIXTURES = Path(__file__).parent / "fixtures" / "lint"
UPDATE = os.environ.get("MALMUNGCHI_UPDATE_GOLDEN") == "1"
DIAG_LINE = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z]\d{3})\b", re.M)


def fixture_for(code: str) -> Path:
    found = [p for p in FIXTURES.glob(f"{code}.*") if p.suffix not in (".expected", ".toml")]
    assert len(found) == 1, f"expected exactly one fixture for {code} in {FIXTURES}, found {found}"
    return found[0]


def run_lint(*args: str):
    return CliRunner().invoke(main, ["corpus", "lint", *args], catch_exceptions=False)


@pytest.mark.parametrize("code", sorted(RULES))
def test_golden_text_output(code, monkeypatch):
    fixture = fixture_for(code)
    monkeypatch.chdir(FIXTURES)
    own = FIXTURES / f"{code}.toml"  # a rule that needs a setting (S001: require_end_markers) has its own config
    result = run_lint("--output-format", "text", *(["--config", own.name] if own.is_file() else []), fixture.name)
    expected_path = FIXTURES / f"{code}.expected"
    if UPDATE:
        expected_path.write_text(result.stdout, encoding="utf-8")
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    assert result.stdout == expected_path.read_text(encoding="utf-8")
    # the fixture triggers its own code, and only that one
    found = {m["code"] for m in DIAG_LINE.finditer(result.stdout)}
    assert found == {code}
    assert all(m["path"] == fixture.name for m in DIAG_LINE.finditer(result.stdout))


def test_every_rule_has_a_fixture_and_nothing_else_is_there():
    names = {p.name.split(".")[0] for p in FIXTURES.iterdir()
             if p.suffix in (".txt", ".jsonl", ".csv", ".tsv") or p.is_symlink()}
    assert names == set(RULES)
    assert {p.stem for p in FIXTURES.glob("*.expected")} == set(RULES)


def _load_generator():
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_fixtures_match_the_generator():
    gen = _load_generator()
    for name, data in gen.fixtures().items():
        assert (FIXTURES / name).read_bytes() == data, f"{name} differs: run make_fixtures.py and commit"
    for name, target in gen.SYMLINKS.items():
        path = FIXTURES / name
        assert path.is_symlink() and os.readlink(path) == target
        assert not path.exists()  # dangling on purpose


def test_generated_fixtures_hold_the_odd_bytes_they_claim():
    assert (FIXTURES / "F001.txt").read_bytes().decode("cp949").startswith("|START_OF_TITLE|>옛 인코딩")
    assert (FIXTURES / "F002.txt").read_bytes()[:2] == b"\xff\xfe"
    assert b"\x00" in (FIXTURES / "F003.txt").read_bytes()
    assert (FIXTURES / "F004.txt").stat().st_size == 0
    assert (FIXTURES / "F006.txt").read_bytes()[:3] == b"\xef\xbb\xbf"
    assert "\u1112\u1161\u11ab" in (FIXTURES / "U001.txt").read_text(encoding="utf-8")  # 한 as jamo
    assert "\u200b" in (FIXTURES / "U002.txt").read_text(encoding="utf-8")
    assert "\x1b" in (FIXTURES / "U003.txt").read_text(encoding="utf-8")
    data = (FIXTURES / "U005.txt").read_bytes()
    assert data.count(b"\r\n") == 2 and data.count(b"\n") == 3
