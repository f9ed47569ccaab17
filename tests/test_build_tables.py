"""Tables with a bad row: the row is dropped and counted (with --allow-errors), the rest of the table is kept; a
table that cannot be parsed is one clear line, not a message cut at a newline inside a quote."""

from __future__ import annotations

import json

from click.testing import CliRunner

from build_helpers import write
from malmungchi.cli import main

ROWS = "".join(f"질문 {i} 오늘 뭐 해?,대답 {i} 책을 읽어.\n" for i in range(10))


def build(tmp_path, tok, *extra):
    return CliRunner().invoke(main, ["corpus", "build", str(tmp_path / "c"), "--tokenizer", str(tok), "--out",
                                     str(tmp_path / "b"), "--prompt-column", "Q", "--answer-column", "A",
                                     "--max-length", "128", "--split-ratios", "1,0,0", *extra],
                              catch_exceptions=False)


def test_one_ragged_row_drops_only_that_row(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "c", "pairs.csv", "Q,A\n" + ROWS + "셋,필드,있음\n" + ROWS.replace("질문", "물음"))
    r = build(tmp_path, qwen3_tokenizer_dir)
    assert r.exit_code == 1 and "row at line 12 has 3 fields, the first row has 2" in r.stderr
    r = build(tmp_path, qwen3_tokenizer_dir, "--allow-errors")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    kept = [d for d in m["documents"] if d["status"] == "kept"]
    dropped = [d for d in m["documents"] if d["status"] == "dropped"]
    assert len(kept) == 20
    assert [d["id"] for d in dropped] == ["c/pairs.csv:12"] and "D003" in dropped[0]["reason"]


def test_an_unclosed_quote_is_one_line_with_its_place(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "c", "pairs.csv", "Q,A\n" + ROWS + '열림,"닫히지 않은\n인용,부호\n')
    r = build(tmp_path, qwen3_tokenizer_dir)
    assert r.exit_code == 1
    line = next(x for x in r.stderr.splitlines() if "D003" in x)
    assert "cannot read table at line" in line and "unexpected end of data" in line
