"""Lint and build agree on which files are data: KoCoNovel's `.coref.jsonl` annotation files are skipped by both,
and both say so (lint used to fail with D002 on them while the build skipped them silently)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from malmungchi.cli import main

SLICE = Path(__file__).parent / "fixtures" / "koconovel"


def test_annotation_files_are_skipped_and_listed_by_lint_and_build(tmp_path, qwen3_tokenizer_dir):
    corpus = tmp_path / "koconovel"
    shutil.copytree(SLICE, corpus, ignore=shutil.ignore_patterns("README.md"))
    lint = CliRunner().invoke(main, ["corpus", "lint", str(corpus), "--output-format", "text"])
    assert " D002 " not in lint.output and lint.exit_code == 0, lint.output
    line = f"skipped {corpus / '1_Ms._B_and_Love_Letters.coref.jsonl'}: a KoCoNovel coreference/speaker annotation"
    assert line in lint.stderr
    r = CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(qwen3_tokenizer_dir), "--out",
                                  str(tmp_path / "b"), "--max-length", "2048"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))
    assert [i["path"] for i in m["inputs"]] == ["koconovel/18_The_Unknown_Woman.text.jsonl",
                                                "koconovel/1_Ms._B_and_Love_Letters.text.jsonl"]
    assert any(n.startswith("skipped ") and "coref.jsonl" in n for n in m["figures"]["notes"])
    assert len([d for d in m["documents"] if d["status"] == "kept"]) == 14
