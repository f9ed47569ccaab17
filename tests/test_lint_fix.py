"""`malmungchi corpus lint --fix / --unsafe-fixes / --diff`: what is rewritten, what is left, how files are written."""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.corpus.fix import fix_file
from malmungchi.schemas.registry import default_registry

NFD = unicodedata.normalize("NFD", "한글")
# every safe problem: M003 (two spellings), U001, U002, U005 (one CRLF among LFs) and a BOM (F006) ...
SAFE_ONLY_BEFORE = ("\ufeff<|START_OF_TITLE|>고칠 책| END_OF_TITLE |>\n"
                    f"문장 {NFD} 가\u200b나.\r\n"
                    "소리 |sound|>(쿵).\n"
                    "|END_OF_BOOK|>\n")
SAFE_ONLY_AFTER = ("|START_OF_TITLE|>고칠 책|END_OF_TITLE|>\n"
                   "문장 한글 가나.\n"
                   "소리 |SOUND|>(쿵).\n"
                   "|END_OF_BOOK|>\n")
# ... and the unsafe ones, which --fix alone must leave: M002 and U003
UNSAFE_BEFORE = "소리 |SOUNDS|>(쿵) 로그\x1b[0m.\n<|END_OF_BOOK|>\n"
UNSAFE_AFTER_SAFE = "소리 |SOUNDS|>(쿵) 로그\x1b[0m.\n|END_OF_BOOK|>\n"
UNSAFE_AFTER_ALL = "소리 |SOUND|>(쿵) 로그[0m.\n|END_OF_BOOK|>\n"
LEGACY_TEXT = "옛날 메모장으로 저장한 글입니다.\n|END_OF_BOOK|>\n"


def lint(cwd: Path, *args: str):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, ["corpus", "lint", "--output-format", "text", *args])
    finally:
        os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def corpus(tmp_path) -> Path:
    (tmp_path / "malmungchi.toml").write_text("", encoding="utf-8")
    (tmp_path / "safe.txt").write_bytes(SAFE_ONLY_BEFORE.encode("utf-8"))
    (tmp_path / "unsafe.txt").write_bytes(UNSAFE_BEFORE.encode("utf-8"))
    (tmp_path / "cp949.txt").write_bytes(LEGACY_TEXT.encode("cp949"))
    (tmp_path / "utf16.txt").write_bytes(LEGACY_TEXT.encode("utf-16"))
    return tmp_path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_fixture_text_really_has_every_safe_problem(corpus):
    result = lint(corpus, "safe.txt")
    codes = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("safe.txt:")}
    assert codes == {"F006", "M003", "U001", "U002", "U005"}
    diags = [line for line in result.stdout.splitlines() if line.startswith("safe.txt:")]
    assert len(diags) == 7 and all(" [*] " in line for line in diags)  # three M003 + one each, all safe
    assert "[*] 7 fixable with `--fix`." in result.stdout


def test_fix_applies_only_safe_fixes(corpus):
    result = lint(corpus, "--fix", ".")
    assert (corpus / "safe.txt").read_bytes() == SAFE_ONLY_AFTER.encode("utf-8")
    assert (corpus / "unsafe.txt").read_bytes() == UNSAFE_AFTER_SAFE.encode("utf-8")
    # legacy encodings are only ever rewritten together with their (unsafe) re-encoding
    assert (corpus / "cp949.txt").read_bytes() == LEGACY_TEXT.encode("cp949")
    assert (corpus / "utf16.txt").read_bytes() == LEGACY_TEXT.encode("utf-16")
    assert result.exit_code == 1  # unsafe problems remain
    out = result.stdout.splitlines()
    assert "Fixed 2 files." in out
    left = sorted(line.split(": ")[1].split()[0] for line in out if line.startswith("./"))
    assert left == ["F001", "F002", "M002", "U003"]
    assert "[*]" not in result.stdout  # nothing safe is left


def test_fix_with_unsafe_fixes_reencodes_and_renames(corpus):
    result = lint(corpus, "--fix", "--unsafe-fixes", ".")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines()[-2:] == ["Fixed 4 files.", "All checks passed!"]
    assert (corpus / "cp949.txt").read_bytes() == LEGACY_TEXT.encode("utf-8")
    assert (corpus / "utf16.txt").read_bytes() == LEGACY_TEXT.encode("utf-8")
    assert (corpus / "unsafe.txt").read_bytes() == UNSAFE_AFTER_ALL.encode("utf-8")
    assert (corpus / "safe.txt").read_bytes() == SAFE_ONLY_AFTER.encode("utf-8")


def test_second_fix_changes_nothing(corpus):
    lint(corpus, "--fix", ".")
    first = _snapshot(corpus)
    result = lint(corpus, "--fix", ".")
    assert _snapshot(corpus) == first
    assert "Fixed" not in result.stdout
    lint(corpus, "--fix", "--unsafe-fixes", ".")
    second = _snapshot(corpus)
    result = lint(corpus, "--fix", "--unsafe-fixes", ".")
    assert _snapshot(corpus) == second and result.exit_code == 0


def test_diff_writes_nothing_and_exits_1(corpus):
    before = _snapshot(corpus)
    mtimes = {p: p.stat().st_mtime_ns for p in corpus.iterdir()}
    result = lint(corpus, "--diff", "safe.txt")
    assert result.exit_code == 1
    assert _snapshot(corpus) == before
    assert {p: p.stat().st_mtime_ns for p in corpus.iterdir()} == mtimes
    out = result.stdout
    assert out.startswith("--- a/safe.txt\n+++ b/safe.txt\n")
    assert "+소리 |SOUND|>(쿵).\n" in out and "-소리 |sound|>(쿵).\n" in out
    assert result.stderr == "1 file would be changed.\n"


def test_diff_shows_reencoding_only_with_unsafe_fixes(corpus):
    result = lint(corpus, "--diff", "cp949.txt")
    assert result.exit_code == 0 and result.stdout == ""  # nothing safe to do
    result = lint(corpus, "--diff", "--unsafe-fixes", "cp949.txt")
    assert result.exit_code == 1
    assert "(encoding only: F001)" in result.stdout
    assert (corpus / "cp949.txt").read_bytes() == LEGACY_TEXT.encode("cp949")


def test_diff_on_a_clean_file_exits_0(corpus):
    lint(corpus, "--fix", "safe.txt")
    result = lint(corpus, "--diff", "safe.txt")
    assert result.exit_code == 0 and result.stdout == ""


def test_diff_exit_zero(corpus):
    assert lint(corpus, "--diff", "--exit-zero", "safe.txt").exit_code == 0


def test_diff_with_a_missing_path_exits_2(corpus):
    result = lint(corpus, "--diff", "nope.txt")
    assert result.exit_code == 2
    assert "error: nope.txt: no such file or folder" in result.stderr


def test_fix_keeps_the_mode_and_leaves_no_temp_file(corpus):
    path = corpus / "safe.txt"
    os.chmod(path, 0o640)
    names = sorted(os.listdir(corpus))
    lint(corpus, "--fix", "safe.txt")
    assert path.read_bytes() == SAFE_ONLY_AFTER.encode("utf-8")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(corpus)) == names


def test_fix_that_cannot_write_exits_2_and_cleans_up(corpus, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", dst)

    monkeypatch.setattr(os, "replace", refuse)
    names = sorted(os.listdir(corpus))
    result = lint(corpus, "--fix", "safe.txt")
    assert result.exit_code == 2
    assert result.stderr == "error: safe.txt: cannot write the fixed file: permission denied\n"
    assert "Traceback" not in result.output
    assert sorted(os.listdir(corpus)) == names  # the temporary file is gone
    assert (corpus / "safe.txt").read_bytes() == SAFE_ONLY_BEFORE.encode("utf-8")


def test_fix_respects_select(corpus):
    lint(corpus, "--fix", "--select", "M003", "safe.txt")
    text = (corpus / "safe.txt").read_bytes().decode("utf-8")
    assert text.startswith("\ufeff|START_OF_TITLE|>")  # BOM kept: F006 not selected
    assert "|SOUND|>" in text and NFD in text and "\u200b" in text and "\r\n" in text


def test_fix_respects_ignore(corpus):
    lint(corpus, "--fix", "--ignore", "U001,F006", "safe.txt")
    text = (corpus / "safe.txt").read_bytes().decode("utf-8")
    assert text.startswith("\ufeff") and NFD in text
    assert "\u200b" not in text and "\r" not in text and "|sound|>" not in text


def test_fix_of_neighbouring_markers_is_reached_in_one_run(tmp_path):
    # regression: rewriting `|SOUND|` to `|SOUND|>` completed the candidate `sound|>` behind it, so a second
    # --fix run changed the file again
    path = tmp_path / "a.txt"
    path.write_text("|SOUND|sound|>\n", encoding="utf-8")
    result = fix_file(str(path), default_registry(), select=["ALL"], ignore=[], unsafe=False)
    assert result.after == "|SOUND|>|SOUND|>\n"
    assert result.applied == ["M003"]


def test_legacy_file_text_problems_are_not_offered_as_safe_fixes(tmp_path):
    # regression: a CP949 file with decomposed Hangul was shown as `U001 [*]`, but --fix (rightly) leaves a
    # CP949 file alone unless it may re-encode it, so the promised fix never happened
    (tmp_path / "malmungchi.toml").write_text("", encoding="utf-8")
    text = "옛날 글입니다 <|SOUND|>.\r\n옛날 글입니다.\r\n|END_OF_BOOK|>\n"
    (tmp_path / "old.txt").write_bytes(text.encode("cp949"))
    result = lint(tmp_path, "old.txt")
    assert "old.txt:1:9: M003 marker" in result.stdout and "old.txt:3:15: U005 mixed" in result.stdout
    assert "[*]" not in result.stdout
    assert "Fixed" not in lint(tmp_path, "--fix", "old.txt").stdout
    assert lint(tmp_path, "--fix", "--unsafe-fixes", "old.txt").exit_code == 0
    fixed = "옛날 글입니다 |SOUND|>.\r\n옛날 글입니다.\r\n|END_OF_BOOK|>\r\n"
    assert (tmp_path / "old.txt").read_bytes() == fixed.encode("utf-8")
