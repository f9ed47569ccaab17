"""Kill `corpus build` (SIGKILL) at seeded random moments: the target is never a partial build directory (it does
not exist, or it is complete: its manifest's content hash verifies), and a rerun among the stale temporary
folders a kill leaves succeeds with the content hash of an uninterrupted build, and clears its own."""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from build_helpers import book, write
from malmungchi.cli import main

ARGS = ["--max-length", "256", "--split-ratios", "0.8,0.1,0.1"]


def content_hash(build: Path) -> str:
    """The content hash recomputed from the files (docs/DESIGN.md: data files, tokenizer files, resolved config)."""
    m = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    h = hashlib.sha256()
    h.update(json.dumps(m["config"], sort_keys=True, ensure_ascii=False).encode())
    files = sorted(str(f.relative_to(build)) for f in (build / "data").rglob("*") if f.is_file()) + \
        sorted(str(f.relative_to(build)) for f in (build / "tokenizer").rglob("*") if f.is_file())
    for rel in files:
        h.update(rel.encode() + b"\0" + hashlib.sha256((build / rel).read_bytes()).hexdigest().encode())
    return h.hexdigest()


def assert_complete(build: Path) -> str:
    m = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    for rel in ("report.json", "eval/test.jsonl", "data/train.parquet", "data/validation.parquet",
                "data/test.parquet", "tokenizer/tokenizer.json"):
        assert (build / rel).is_file(), rel
    assert content_hash(build) == m["content_hash"]
    return m["content_hash"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("killed") / "corpus"
    for f in range(2):
        write(d, f"f{f}.txt", "".join(book(f * 1000 + i, paragraphs=6) for i in range(60)))
    return d


def start(corpus: Path, tok: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "malmungchi", "corpus", "build", str(corpus), "--tokenizer",
                             str(tok), "--out", str(out), *ARGS], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_at_random_moments_never_leaves_a_partial_build(corpus, qwen3_tokenizer_dir):
    parent = corpus.parent / "builds"
    parent.mkdir()
    # an uninterrupted build: the reference hash, and how long a build takes (the range of kill moments)
    t0 = time.monotonic()
    proc = start(corpus, qwen3_tokenizer_dir, parent / "reference")
    _, err = proc.communicate(timeout=300)
    full = time.monotonic() - t0
    assert proc.returncode == 0, err.decode()
    reference = assert_complete(parent / "reference")

    targets = []
    for seed in range(1):
        delay = random.Random(seed).uniform(0.2, 1.05) * full
        out = parent / f"out{seed}"
        proc = start(corpus, qwen3_tokenizer_dir, out)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        targets.append(out)
    # and one kill while the build directory is being written (its temporary folder exists)
    out = parent / "writing"
    proc = start(corpus, qwen3_tokenizer_dir, out)
    deadline = time.monotonic() + 300
    while not any(p.name.startswith(".writing.") for p in parent.iterdir()) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(random.Random(99).uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    targets.append(out)

    for out in targets:
        if out.exists():  # the kill came after the rename: it must be whole
            assert assert_complete(out) == reference
    stale = [p.name for p in parent.iterdir() if p.name.startswith(".")]
    assert stale, "no kill landed while a build directory was being written"
    # rerun (up to two of) the targets a kill left absent, beside the stale temporary folders: the same content
    # hash as the uninterrupted build
    reruns = ([t for t in reversed(targets) if not t.exists()] or targets[-1:])[:2]
    for out in reruns:
        r = CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(qwen3_tokenizer_dir),
                                      "--out", str(out), "--force", *ARGS])
        assert r.exit_code == 0, r.output
        assert assert_complete(out) == reference
    # a rerun removes the temporary folders its own target's killed builds left (their processes are gone), and
    # leaves other targets' alone; nothing new is left behind
    rerun = {out.name for out in reruns}
    for name in stale:
        owner = name[1:].split(".", 1)[0]
        assert (parent / name).exists() == (owner not in rerun), name
    assert not [p for p in parent.iterdir() if p.name.startswith(".") and p.name not in stale]


def test_two_builds_racing_on_one_out(corpus, qwen3_tokenizer_dir, tmp_path):
    """Both start before either has written: one wins whole, the other fails with one line, nothing is left over."""
    out = tmp_path / "out"
    procs = [start(corpus, qwen3_tokenizer_dir, out) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read().decode()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "error:" in loser and "Traceback" not in loser and len(loser.strip().splitlines()) == 1, loser
    assert_complete(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
