"""Chat records: roles outside system/user/assistant are a D004 error in lint and build (never a speaker prefix in
the training target); other datasets' names for the three roles are mapped."""

from __future__ import annotations

import json

from click.testing import CliRunner

from build_helpers import write
from malmungchi.cli import main


def _record(*turns):
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in turns]}, ensure_ascii=False)


GOOD = [_record(("user", f"질문 {i}: 오늘 날씨 어때?"), ("assistant", f"답 {i}: 맑아요.")) for i in range(12)]
ALIASED = _record(("human", "사람이 묻는다."), ("gpt", "모델이 답한다."))
WIZARD = _record(("user", "너는 누구니?"), ("wizard", "나는 마법사다."))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_lint_flags_unknown_roles_only(tmp_path):
    write(tmp_path / "c", "chat.jsonl", "\n".join(GOOD + [ALIASED, WIZARD]) + "\n")
    r = run("corpus", "lint", tmp_path / "c", "--output-format", "text")
    assert r.exit_code == 1
    lines = [x for x in r.output.splitlines() if " D004 " in x]
    assert len(lines) == 1 and "chat.jsonl:14:1: D004 line 14: message 2 has role 'wizard'" in lines[0]


def test_build_refuses_then_drops_the_record_and_maps_aliases(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "c", "chat.jsonl", "\n".join(GOOD + [ALIASED, WIZARD]) + "\n")
    args = ("corpus", "build", tmp_path / "c", "--tokenizer", qwen3_tokenizer_dir, "--mode", "chat",
            "--max-length", 128, "--split-ratios", "1,0,0")
    r = run(*args, "--out", tmp_path / "b")
    assert r.exit_code == 1 and "D004" in r.stderr and not (tmp_path / "b").exists()
    r = run(*args, "--out", tmp_path / "b", "--allow-errors")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "b" / "manifest.json").read_text())
    dropped = [d for d in m["documents"] if d["status"] == "dropped"]
    assert [d["id"] for d in dropped] == ["c/chat.jsonl:14"] and "D004" in dropped[0]["reason"]
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "b" / "tokenizer"))
    table = pq.read_table(tmp_path / "b" / "data" / "train.parquet").to_pylist()
    texts = [tok.decode(row["input_ids"]) for row in table]
    trained = "".join(tok.decode([i for i, k in zip(row["input_ids"], row["assistant_masks"]) if k]) for row in table)
    assert any("<|im_start|>user\n사람이 묻는다." in t and "<|im_start|>assistant\n" in t and "gpt" not in t
               for t in texts)
    assert "모델이 답한다." in trained and "마법사" not in "".join(texts) and "wizard" not in "".join(texts)
