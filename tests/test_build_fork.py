"""Where the build's readers cannot be forked it reads in-process: after a library caller read a table with
polars (polars' thread pool does not survive a fork, so a forked reader of a CSV file used to wait for it
forever), and on a platform without fork (Windows)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path

import malmungchi.prep.stream as stream
from malmungchi.prep.readers import find_inputs
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry

SLICE = Path(__file__).parent / "fixtures" / "backspeech" / "1uLA7axqouQ.head60.csv"
SCRIPT = """
import io, sys
import polars as pl
pl.read_csv(io.StringIO("a,b\\n1,2\\n3,4\\n"))  # starts polars' thread pool in this process
import malmungchi.prep.stream as stream
from malmungchi.prep.readers import find_inputs
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry
stream.PARALLEL_BYTES = 0  # a process pool even for two small files (the build's reading stage)
cfg = BuildConfig(speaker_column="2", text_column="3", header=False)
got = list(stream.stream(find_inputs([sys.argv[1]]), default_registry(), cfg, 2, True))
print("documents", sum(len(r) for _, r in got))
"""


def test_a_build_after_polars_was_used_finishes(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    for name in ("a.csv", "b.csv"):
        (corpus / name).write_bytes(SLICE.read_bytes())
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(corpus)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "documents 2"


def test_a_build_where_processes_cannot_fork_reads_in_process(tmp_path, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    for name in ("a.csv", "b.csv"):
        (corpus / name).write_bytes(SLICE.read_bytes())
    real = multiprocessing.get_context

    def no_fork(method=None):  # as on Windows
        if method == "fork":
            raise ValueError("cannot find context for 'fork'")
        return real(method)

    monkeypatch.setattr(multiprocessing, "get_context", no_fork)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    monkeypatch.setattr(stream, "PARALLEL_BYTES", 0)
    cfg = BuildConfig(speaker_column="2", text_column="3", header=False)
    got = list(stream.stream(find_inputs([str(corpus)]), default_registry(), cfg, 2, True))
    assert [s.path for s, _ in got] == sorted(str(p) for p in corpus.iterdir())
    assert sum(len(r) for _, r in got) == 2
