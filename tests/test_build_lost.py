"""A document that keeps only a sliver of its tokens is marked, counted in the report's lost figures and warned
about; build folders take the user's umask like every other output."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from build_helpers import book, write
from malmungchi.cli import main


def test_mostly_lost_documents_are_marked_and_counted(tmp_path, qwen3_tokenizer_dir):
    corpus = tmp_path / "c"
    write(corpus, "long.txt", "|START_OF_TITLE|>긴 문단|END_OF_TITLE|>\n\n" + "아주 긴 문단입니다. " * 400 + "\n\n짧은 끝.\n"
          "|END_OF_BOOK|>\n")
    write(corpus, "fine.txt", "".join(book(i) for i in range(6)))
    out = tmp_path / "b"
    r = CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(qwen3_tokenizer_dir), "--out",
                                  str(out), "--max-length", "128", "--split-ratios", "1,0,0"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "manifest.json").read_text())
    docs = {d["id"]: d for d in m["documents"]}
    long = docs["c/long.txt#0"]
    assert long["status"] == "kept" and long["mostly_lost"] and long["lost_tokens"] > 0.9 * long["tokens"]
    assert not any(d.get("mostly_lost") for k, d in docs.items() if k != "c/long.txt#0")
    assert m["figures"]["truncation"]["documents_mostly_lost"] == 1
    assert any("1 document(s) lost more than 50%" in w for w in m["figures"]["warnings"])
    assert "1 document(s) mostly lost" in r.output


def test_build_folders_follow_the_umask(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "c", "a.txt", "".join(book(i) for i in range(4)))
    old = os.umask(0o027)
    try:
        r = CliRunner().invoke(main, ["corpus", "build", str(tmp_path / "c"), "--tokenizer", str(qwen3_tokenizer_dir),
                                      "--out", str(tmp_path / "b"), "--max-length", "128"], catch_exceptions=False)
    finally:
        os.umask(old)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o750
