"""A library caller that read a table with polars before building: polars' thread pool does not survive a fork,
so a forked reader of a CSV file used to wait for it forever. The build reads in-process then."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SLICE = Path(__file__).parent / "fixtures" / "backspeech" / "1uLA7axqouQ.head60.csv"
SCRIPT = """
import io, sys
import polars as pl
pl.read_csv(io.StringIO("a,b\\n1,2\\n3,4\\n"))  # starts polars' thread pool in this process
import malmungchi.prep.stream as stream
stream.PARALLEL_BYTES = 0  # a process pool even for two small files
from malmungchi.prep.build import plan
from malmungchi.schemas.config import BuildConfig
from malmungchi.schemas.registry import default_registry
p = plan([sys.argv[1]], BuildConfig(speaker_column="2", text_column="3", header=False), default_registry(),
         tokenizer_source=sys.argv[2], jobs=2)
print("documents", len(p.documents))
"""


def test_a_build_after_polars_was_used_finishes(tmp_path, qwen3_tokenizer_dir):
    corpus = tmp_path / "c"
    corpus.mkdir()
    for name in ("a.csv", "b.csv"):
        (corpus / name).write_bytes(SLICE.read_bytes())
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(corpus), str(qwen3_tokenizer_dir)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "documents 2"
