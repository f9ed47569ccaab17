"""Rows of one book stay in one split: the scene rows of a KoCoNovel novel (one .jsonl file) are one group by
default, and --group-by names the field or column that says which book a row belongs to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from build_helpers import write
from malmungchi.cli import main

SLICE = Path(__file__).parent / "fixtures" / "koconovel"


def build(corpus, tok, out, *extra) -> dict:
    r = CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(tok), "--out", str(out),
                                  "--max-length", "2048", "--split-unit", "document", *map(str, extra)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def splits_by(manifest: dict, what: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in manifest["documents"]:
        if d["status"] == "kept":
            out.setdefault(d[what] if what != "file" else d["id"].split("#")[0], set()).add(d["split"])
    return out


def test_the_scenes_of_one_novel_share_a_split(tmp_path, qwen3_tokenizer_dir):
    corpus = tmp_path / "koconovel"
    shutil.copytree(SLICE, corpus, ignore=shutil.ignore_patterns("README.md", "*.coref.jsonl"))
    m = build(corpus, qwen3_tokenizer_dir, tmp_path / "b", "--split-ratios", "0.5,0,0.5", "--seed", 3)
    by_novel = splits_by(m, "file")
    assert len(by_novel) == 2 and all(len(s) == 1 for s in by_novel.values()), by_novel
    assert {next(iter(s)) for s in by_novel.values()} == {"train", "test"}  # the rescue moved a whole novel
    assert all(d["group"] == d["id"].split("#")[0] for d in m["documents"])
    # the same rows one by one (each its own group) do land in both splits: grouping is what keeps them apart
    m2 = build(corpus, qwen3_tokenizer_dir, tmp_path / "b2", "--split-ratios", "0.5,0,0.5", "--seed", 3,
               "--group-by", "doc_id")
    assert any(len(s) == 2 for s in splits_by(m2, "file").values())


def test_group_by_a_field_or_a_column(tmp_path, qwen3_tokenizer_dir):
    rows = [{"book": f"b{i % 4}", "text": f"{i}번째 장면. 오늘도 {i}번 비가 왔다. 우산을 챙겼다."} for i in range(40)]
    write(tmp_path / "j", "scenes.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    m = build(tmp_path / "j", qwen3_tokenizer_dir, tmp_path / "bj", "--group-by", "book",
              "--split-ratios", "0.5,0.25,0.25")
    assert sorted(splits_by(m, "group")) == ["book=b0", "book=b1", "book=b2", "book=b3"]
    assert all(len(s) == 1 for s in splits_by(m, "group").values())
    table = "book,text\n" + "".join(f"{r['book']},{r['text']}\n" for r in rows)
    write(tmp_path / "t", "scenes.csv", table)
    m = build(tmp_path / "t", qwen3_tokenizer_dir, tmp_path / "bt", "--group-by", "book",
              "--split-ratios", "0.5,0.25,0.25")
    groups = splits_by(m, "group")
    assert len(groups) == 4 and all(len(s) == 1 for s in groups.values())
    r = CliRunner().invoke(main, ["corpus", "build", str(tmp_path / "t"), "--tokenizer", str(qwen3_tokenizer_dir),
                                  "--out", str(tmp_path / "bx"), "--group-by", "novel"])
    assert r.exit_code == 1 and "no column 'novel' for --group-by" in r.stderr
