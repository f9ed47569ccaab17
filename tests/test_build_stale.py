"""A killed build leaves its temporary folder; the next build of the same target removes it if its process is gone."""

import subprocess
import sys

from malmungchi.prep.write import remove_stale_temporaries


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
        removed = remove_stale_temporaries(out)
        assert sorted(removed) == sorted([dead, old])
        assert not dead.exists() and not old.exists()
        assert live.exists() and other.exists()
    finally:
        live_proc.kill()
        live_proc.wait()
