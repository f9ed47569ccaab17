"""A killed build (or export) leaves its temporary folder; the next one of the same target removes it if its
process is gone. The swap that replaces an earlier output never loses it (malmungchi.outdir)."""

import os
import subprocess
import sys

import pytest

from malmungchi.outdir import remove_stale_temporaries, restore_interrupted_swap, staged, swap_in, temporary_sibling


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_orphaned_temporaries_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "build"
    dead = tmp_path / f".build.{_dead_pid()}.abc123.tmp"
    (dead / "data").mkdir(parents=True)
    old = tmp_path / f".build.{_dead_pid()}.def456.old"
    old.mkdir()
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".build.{live_proc.pid}.ghi789.tmp"
        live.mkdir()
        other = tmp_path / f".other.{_dead_pid()}.jkl.tmp"  # another target's: not ours to touch
        other.mkdir()
        dotted = tmp_path / f".build.5.{_dead_pid()}.mno.tmp"  # the target `build.5`'s, also dead: not ours either
        dotted.mkdir()
        removed = remove_stale_temporaries(out)
        assert sorted(removed) == sorted([dead, old])
        assert not dead.exists() and not old.exists()
        assert live.exists() and other.exists() and dotted.exists()
    finally:
        live_proc.kill()
        live_proc.wait()


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_the_temporary_folder_has_the_mode_mkdir_gives(tmp_path, mask):
    saved = os.umask(mask)
    try:
        tmp = temporary_sibling(tmp_path / "deep" / "out")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(saved)
    assert tmp.parent == tmp_path / "deep" and tmp.name.startswith(f".out.{os.getpid()}.") and tmp.suffix == ".tmp"
    assert oct(tmp.stat().st_mode & 0o777) == oct((tmp_path / "plain").stat().st_mode & 0o777) == oct(0o777 & ~mask)


def test_a_swap_whose_second_rename_fails_puts_the_earlier_output_back(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("earlier")
    with pytest.raises(FileNotFoundError):
        swap_in(tmp_path / "gone", out, replace=True)  # the new folder is not there
    assert (out / "mine.txt").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_staged_removes_its_folder_when_the_writing_fails_and_refuses_a_concurrent_output(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        with staged(out) as tmp:
            (tmp / "half").write_text("x")
            raise KeyboardInterrupt
    assert not list(tmp_path.iterdir())
    with staged(out) as tmp:
        (tmp / "new").write_text("new")
        out.mkdir()  # another writer got there first
        (out / "theirs").write_text("theirs")
        assert swap_in(tmp, out, replace=False) is False
        assert tmp.is_dir()
    assert sorted(p.name for p in out.iterdir()) == ["theirs"]
    assert swap_in(tmp, out, replace=True) is True
    assert sorted(p.name for p in out.iterdir()) == ["new"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("saved", ["saved", "build"])  # `build`: where malmungchi 0.1.0's `corpus build` put it
def test_a_saved_earlier_output_is_never_removed_as_stale_and_goes_back_whoever_saved_it(tmp_path, saved):
    """A `--force` killed between its two renames left the only copy of the earlier output in `.old/SAVED`: the
    cleanup keeps it, and the next writer of `out`, whichever command it is, puts it back."""
    out = tmp_path / "foo"
    old = tmp_path / f".foo.{_dead_pid()}.abc123.old"
    (old / saved).mkdir(parents=True)
    (old / saved / "manifest.json").write_text("{}")
    done = tmp_path / f".foo.{_dead_pid()}.def456.old"  # killed while deleting an output already replaced
    (done / "replaced" / "data").mkdir(parents=True)
    half = tmp_path / f".foo.{_dead_pid()}.ghi789.tmp"
    half.mkdir()
    assert sorted(remove_stale_temporaries(out)) == sorted([done, half])
    assert (old / saved / "manifest.json").read_text() == "{}"
    out.mkdir()  # while `out` is there, the saved copy stays where it is
    assert restore_interrupted_swap(out) is None and remove_stale_temporaries(out) == []
    out.rmdir()
    assert restore_interrupted_swap(out) == out
    assert (out / "manifest.json").read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["foo"]


def test_a_finished_swap_leaves_nothing_saved_behind(tmp_path, monkeypatch):
    """Once the new output is in place, the earlier one is renamed `replaced` before it is deleted: a kill during
    that deletion leaves a folder the cleanup removes, not one that looks saved."""
    import shutil

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("earlier")
    seen = []
    monkeypatch.setattr(shutil, "rmtree", lambda path, **kw: seen.append(sorted(p.name for p in path.iterdir())))
    tmp = temporary_sibling(out)
    assert swap_in(tmp, out, replace=True) is True
    assert seen == [["replaced"]]
