"""Files and folders that cannot be read: a clear line each, never a traceback; exit 2 only when the run could
not do its job (a path that does not exist, a usage error), exit 1 when it reports an unreadable file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.corpus import source

GOOD = "본문.\n|END_OF_BOOK|>\n"


def lint(cwd: Path, *args: str):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, ["corpus", "lint", "--output-format", "text", *args])
    finally:
        os.chdir(old)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "malmungchi.toml").write_text("", encoding="utf-8")
    (tmp_path / "good.txt").write_text(GOOD, encoding="utf-8")
    return tmp_path


def _diag_lines(result) -> list[str]:
    return [line for line in result.stdout.splitlines() if ": F" in line or ": M" in line or ": S" in line]


def test_symlink_loop_given_as_a_file(folder):
    os.symlink("b.txt", folder / "a.txt")
    os.symlink("a.txt", folder / "b.txt")
    result = lint(folder, "a.txt", "good.txt")
    assert result.exit_code == 1
    assert _diag_lines(result) == ["a.txt:1:1: F007 cannot read file: symlink loop"]


def test_symlink_loop_as_the_first_path_does_not_break_config_lookup(folder):
    # regression: the config search resolved the first path and raised RuntimeError on the loop
    os.symlink("loop.txt", folder / "loop.txt")
    result = lint(folder, "loop.txt")
    assert result.exit_code == 1
    assert _diag_lines(result) == ["loop.txt:1:1: F007 cannot read file: symlink loop"]


def test_symlink_loops_inside_a_folder_are_reported_once_and_do_not_hang(folder):
    os.symlink("y.txt", folder / "x.txt")
    os.symlink("x.txt", folder / "y.txt")
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.txt").write_text(GOOD, encoding="utf-8")
    os.symlink("..", folder / "sub" / "up")  # a folder symlink to its parent
    result = lint(folder, ".")
    assert result.exit_code == 1
    assert sorted(_diag_lines(result)) == [
        "./sub/up:1:1: F007 folder already visited as . (a symlink loop or a second link); skipped",
        "./x.txt:1:1: F007 cannot read file: symlink loop",
        "./y.txt:1:1: F007 cannot read file: symlink loop",
    ]


def test_dangling_symlink(folder):
    os.symlink("gone.txt", folder / "dangling.txt")
    result = lint(folder, ".")
    assert result.exit_code == 1
    assert _diag_lines(result) == ["./dangling.txt:1:1: F007 cannot read file: no such file (a broken symlink?)"]
    # given by name it is the same finding, not a missing path
    result = lint(folder, "dangling.txt")
    assert result.exit_code == 1 and result.stderr == ""


def test_unreadable_file(folder, monkeypatch):
    # running as root makes chmod 000 readable, so refuse the read itself
    real_open = open

    def guarded_open(path, *args, **kwargs):
        if str(path).endswith("secret.txt"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    (folder / "secret.txt").write_text(GOOD, encoding="utf-8")
    monkeypatch.setattr(source, "open", guarded_open, raising=False)
    result = lint(folder, ".")
    assert result.exit_code == 1
    assert _diag_lines(result) == ["./secret.txt:1:1: F007 cannot read file: permission denied"]


def test_unlistable_folder(folder, monkeypatch):
    (folder / "locked").mkdir()
    (folder / "locked" / "x.txt").write_text("<|SOUND|>", encoding="utf-8")
    real_scandir = os.scandir

    def guarded_scandir(path="."):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    result = lint(folder, ".")
    assert result.exit_code == 1
    assert _diag_lines(result) == ["./locked:1:1: F007 cannot read folder: permission denied"]


def test_folder_given_as_a_path_is_searched_and_odd_names_are_skipped(folder):
    (folder / "book.txt").mkdir()  # a folder named like a file
    (folder / "book.txt" / "inner.txt").write_text("<|SOUND|>\n|END_OF_BOOK|>\n", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG\x00\x00")  # not a corpus suffix: skipped in a folder
    (folder / ".hidden.txt").write_text("<|SOUND|>", encoding="utf-8")
    result = lint(folder, ".")
    assert result.exit_code == 1
    assert _diag_lines(result) == ["./book.txt/inner.txt:1:1: M003 [*] marker '<|SOUND|>' has a leading '<'"]
    result = lint(folder, "book.txt")
    assert _diag_lines(result) == ["book.txt/inner.txt:1:1: M003 [*] marker '<|SOUND|>' has a leading '<'"]


def test_a_file_given_by_name_is_linted_whatever_its_suffix(folder):
    (folder / "image.png").write_bytes(b"\x89PNG\x00\x00")
    result = lint(folder, "image.png")
    assert result.exit_code == 1
    assert _diag_lines(result) == ["image.png:1:1: F003 file is binary: NUL byte at byte 4"]


def test_missing_paths_exit_2_one_line_each(folder):
    result = lint(folder, "nope.txt", "good.txt", "gone/")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: nope.txt: no such file or folder",
                                          "error: gone/: no such file or folder"]


def test_file_path_with_a_trailing_slash(folder):
    result = lint(folder, "good.txt/")
    assert result.exit_code == 2
    assert result.stderr == "error: good.txt/: no such file or folder\n"


def test_fix_skips_unreadable_and_binary_files(folder):
    os.symlink("nowhere.txt", folder / "dangling.txt")
    (folder / "bin.txt").write_bytes(b"\x00\x01<|SOUND|>")
    result = lint(folder, "--fix", ".")
    assert result.exit_code == 1
    assert (folder / "bin.txt").read_bytes() == b"\x00\x01<|SOUND|>"
    assert os.readlink(folder / "dangling.txt") == "nowhere.txt"


def test_bom_file_with_invalid_utf8_points_at_the_bad_byte(folder):
    # regression: with a BOM the byte position of the first bad byte was counted from after the BOM, so the
    # message named the wrong byte and the column was off
    (folder / "bad.txt").write_bytes(b"\xef\xbb\xbfab\ncd\xffx\n")
    result = lint(folder, "bad.txt")
    assert _diag_lines(result) == [
        "bad.txt:1:1: F006 [*] file starts with a UTF-8 byte-order mark",
        "bad.txt:2:3: F005 invalid UTF-8 byte 0xff at byte 8 (not CP949 or UTF-16 either); re-save the file as UTF-8",
    ]


def test_file_holding_only_a_bom_is_empty(folder):
    # regression: a BOM-only file passed as holding text
    (folder / "bom.txt").write_bytes(b"\xef\xbb\xbf")
    result = lint(folder, "bom.txt")
    assert _diag_lines(result) == ["bom.txt:1:1: F004 file holds only a byte-order mark",
                                   "bom.txt:1:1: F006 [*] file starts with a UTF-8 byte-order mark"]


def test_jsonl_lines_are_split_at_line_feeds_only(folder):
    # regression: str.splitlines() also splits at U+2028, U+0085 and form feeds, which JSON strings may hold raw
    (folder / "d.jsonl").write_text('{"text": "가\u2028나"}\n{"text": "다\u000c라"}\n{"text": 1}\n', encoding="utf-8")
    result = lint(folder, "d.jsonl")
    assert _diag_lines(result) == []
    assert result.stdout.splitlines()[0].startswith("d.jsonl:2:")  # U003 for the form feed, on line 2
    assert "d.jsonl:3:1: D002 line 3:" in result.stdout
