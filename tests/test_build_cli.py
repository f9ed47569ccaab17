"""`malmungchi corpus build/stats` end to end through the CLI: the build directory contract, reproducible bytes,
refusals, and .csv/.tsv/.jsonl inputs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from build_helpers import BOOK, book, write
from malmungchi.cli import main


def run(*args):
    return CliRunner().invoke(main, ["corpus", *[str(a) for a in args]], catch_exceptions=False)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus") / "books"
    write(d, "a.txt", BOOK + "".join(book(i) for i in range(6)))
    write(d, "b.txt", "".join(book(10 + i) for i in range(6)))
    return d


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus_dir, qwen3_tokenizer_dir):
    out = tmp_path_factory.mktemp("out") / "build"
    r = run("build", corpus_dir, "--tokenizer", qwen3_tokenizer_dir, "--out", out, "--max-length", 128)
    assert r.exit_code == 0, r.output
    return out


def test_build_directory_contract(built):
    for rel in ("manifest.json", "report.json", "tokenizer/tokenizer.json", "data/train.parquet",
                "data/validation.parquet", "data/test.parquet", "eval/test.jsonl"):
        assert (built / rel).is_file(), rel
    m = json.loads((built / "manifest.json").read_text())
    for key in ("schema_version", "content_hash", "inputs", "documents", "config", "mode", "tokenizer", "markers",
                "splits", "figures"):
        assert key in m
    assert [i["path"] for i in m["inputs"]] == ["books/a.txt", "books/b.txt"]
    assert all(len(i["sha256"]) == 64 and i["bytes"] > 0 for i in m["inputs"])
    assert m["markers"]["SOUND"]["token"] == "<|sound|>"
    assert m["markers"]["SOUND"]["id"] == m["tokenizer"]["added_tokens"]["<|sound|>"]
    assert m["tokenizer"]["vocab_after"] == m["tokenizer"]["vocab_before"] + len(m["tokenizer"]["added_tokens"])
    assert {d["status"] for d in m["documents"]} == {"kept"} and len(m["documents"]) == 13
    for k in ("stop_token", "stop_id", "eos_token", "eos_id", "pad_token", "pad_id", "class", "source"):
        assert k in m["tokenizer"]

    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_dir=str(built / "data"))
    assert set(ds) == {"train", "validation", "test"}
    row = ds["train"][0]
    assert sum(row["seq_lengths"]) == len(row["input_ids"]) == len(row["position_ids"]) <= 128
    assert len(row["doc_ids"]) == len(row["seq_lengths"])
    assert sum(len(x["input_ids"]) for s in ds.values() for x in s) == sum(v["tokens"] for v in m["splits"].values())

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(built / "tokenizer"))
    assert tok.convert_tokens_to_ids("<|sound|>") == m["markers"]["SOUND"]["id"]
    items = [json.loads(x) for x in (built / "eval" / "test.jsonl").read_text().splitlines()]
    assert all(set(i) == {"id", "prompt", "answer", "answer_canonical"} for i in items)


def test_rebuild_is_byte_identical_and_force_is_required(built, corpus_dir, qwen3_tokenizer_dir, tmp_path):
    r = run("build", corpus_dir, "--tokenizer", qwen3_tokenizer_dir, "--out", built, "--max-length", 128)
    assert r.exit_code == 2 and "already exists" in r.output and "--force" in r.output
    again = tmp_path / "again"
    r = run("build", corpus_dir, "--tokenizer", qwen3_tokenizer_dir, "--out", again, "--max-length", 128)
    assert r.exit_code == 0, r.output
    for f in sorted(p.relative_to(built) for p in built.rglob("*") if p.is_file()):
        assert (again / f).read_bytes() == (built / f).read_bytes(), f
    # --force replaces atomically; a different config changes the content hash
    r = run("build", corpus_dir, "--tokenizer", qwen3_tokenizer_dir, "--out", again, "--max-length", 96, "--force")
    assert r.exit_code == 0, r.output
    h1 = json.loads((built / "manifest.json").read_text())["content_hash"]
    h2 = json.loads((again / "manifest.json").read_text())["content_hash"]
    assert h1 != h2
    assert not [p for p in again.parent.iterdir() if p.name.startswith(".again")]  # no temp dirs left


def test_bad_tokenizer_path_is_one_line_exit_2(corpus_dir, tmp_path):
    r = CliRunner().invoke(main, ["corpus", "build", str(corpus_dir), "--tokenizer", str(tmp_path / "nope"),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nope" in lines[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["corpus", "stats", str(corpus_dir), "--tokenizer", str(empty)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and str(empty) in r.output


def test_lint_errors_refuse_the_build_and_allow_errors_drops_documents(tmp_path, qwen3_tokenizer_dir):
    d = tmp_path / "c"
    broken = "|START_OF_DIALOGUE|>\n철수: 엉뚱한 끝\n|END_OF_TITLE|>\n|END_OF_BOOK|>\n"  # S002: closes no open block
    write(d, "a.txt", book(1) + broken + book(2))
    write(d, "legacy.txt", "")
    (d / "legacy.txt").write_bytes(book(3).encode("cp949"))  # F001: whole file refused
    r = run("build", d, "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "o")
    assert r.exit_code == 1
    assert "S002" in r.output and "F001" in r.output and "--allow-errors" in r.output
    # the fix command that applies: re-encoding CP949 is an unsafe fix; S002 has none
    assert f"`malmungchi corpus lint {d} --unsafe-fixes --diff` shows the fixes" in r.output  # pasteable: the input
    assert "`--fix --unsafe-fixes` applies them" in r.output and "some need fixing by hand" in r.output
    assert not (tmp_path / "o").exists()
    r = run("build", d, "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "o", "--exclude", "a.txt")
    # the lint it suggests leaves out what the build left out (else `--fix` would rewrite the excluded file)
    assert r.exit_code == 1 and f"`malmungchi corpus lint {d} --exclude a.txt --unsafe-fixes --diff`" in r.output
    only = tmp_path / "only"
    write(only, "a.txt", broken)
    r = run("build", only, "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "o")
    assert r.exit_code == 1 and "fix what the lines above name, by hand" in r.output
    assert "--fix" not in r.output.splitlines()[-1]
    r = run("build", d, "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "o", "--allow-errors",
            "--split-ratios", "1,0,0")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    docs = {x["id"]: x for x in m["documents"]}
    assert docs["c/a.txt#1"]["status"] == "dropped" and "S002" in docs["c/a.txt#1"]["reason"]
    assert docs["c/legacy.txt"]["status"] == "dropped" and "F001" in docs["c/legacy.txt"]["reason"]
    assert docs["c/a.txt#0"]["status"] == docs["c/a.txt#2"]["status"] == "kept"


def test_csv_tsv_and_jsonl_inputs(tmp_path, qwen3_tokenizer_dir):
    d = tmp_path / "c"
    write(d, "pairs.csv", "Q,A,label\n안녕하세요,반가워요,0\n\"쉼표, 있는 질문\",네 답입니다,1\n안녕하세요,반가워요,0\n")
    write(d, "scenes.jsonl", json.dumps({"text": "첫 장면입니다.\n\n둘째 문단.", "doc_id": "1_0"}, ensure_ascii=False)
          + "\n" + json.dumps({"messages": [{"role": "user", "content": "질문"},
                                            {"role": "assistant", "content": "대답"}]}, ensure_ascii=False) + "\n")
    r = run("stats", d, "--tokenizer", qwen3_tokenizer_dir, "--prompt-column", "Q", "--answer-column", "A",
            "--mode", "chat", "--json", "--split-ratios", "1,0,0")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["documents"]["duplicates"] == 1  # the repeated Q/A pair
    assert rep["splits"]["train"]["sequences"] == 3  # two pairs + the messages record; the text scene has no dialogue
    t = tmp_path / "t"
    write(t, "talk.csv", "0.1\t1.0\tspeaker#A\t안녕하세요, 반갑습니다.\n1.2\t2.0\tspeaker#B\t네, 안녕하세요.\n"
                         "2.1\t3.0\tspeaker#A\t오늘 날씨가 좋네요.\n")
    r = run("stats", t, "--tokenizer", qwen3_tokenizer_dir, "--speaker-column", "2", "--text-column", "3", "--json",
            "--split-ratios", "1,0,0")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["splits"]["train"]["documents"] == 1 and rep["documents"]["kept"] == 1
    from malmungchi.prep.readers import read_source
    from malmungchi.schemas.config import BuildConfig
    from malmungchi.schemas.registry import default_registry

    src = read_source(str(t / "talk.csv"), "talk.csv", default_registry(),
                      BuildConfig(speaker_column="2", text_column="3"))
    (doc,) = src.documents
    assert [(x.speaker, x.plain) for x in doc.segments[0].turns] == [
        ("speaker#A", "안녕하세요, 반갑습니다."), ("speaker#B", "네, 안녕하세요."), ("speaker#A", "오늘 날씨가 좋네요.")]


def test_stats_prints_the_report(corpus_dir, qwen3_tokenizer_dir):
    r = run("stats", corpus_dir, "--tokenizer", qwen3_tokenizer_dir, "--max-length", 128)
    assert r.exit_code == 0, r.output
    for text in ("splits", "tokens per Hangul syllable", "SOUND", "packing", "longest documents", "split unit"):
        assert text in r.output


def test_the_dataset_card_makes_load_dataset_load_the_training_splits(built):
    """Without the card, `load_dataset(BUILD_DIR)` infers splits from file names and loads eval/test.jsonl alone."""
    import datasets

    card = (built / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n") and "configs:" in card and '"data/train.parquet"' in card
    m = json.loads((built / "manifest.json").read_text())
    assert m["content_hash"] in card and str(built) not in card  # no machine path: rebuilds elsewhere match
    ds = datasets.load_dataset(str(built))
    assert sorted(ds) == ["test", "train", "validation"]
    assert {s: len(ds[s]) for s in ds} == {s: m["splits"][s]["rows"] for s in ds}
    assert ds["test"].column_names == ds["train"].column_names and "answer" not in ds["test"].column_names


def test_a_build_without_validation_rows_is_a_valid_training_input(corpus_dir, qwen3_tokenizer_dir, tmp_path):
    """--split-ratios with no validation share writes an empty validation split; training must accept it (an
    empty column compared row by row is no mismatch)."""
    from malmungchi.contracts.build import read_build_dir

    out = tmp_path / "b"
    r = run("build", corpus_dir, "--tokenizer", qwen3_tokenizer_dir, "--out", out, "--max-length", 128,
            "--split-ratios", "0.9,0,0.1")
    assert r.exit_code == 0, r.output
    build = read_build_dir(out)
    assert len(build.splits["validation"]) == 0 and len(build.splits["train"]) > 0


def test_paths_with_brackets_are_printed_as_they_are(tmp_path, corpus_dir, qwen3_tokenizer_dir):
    """The CLI prints paths and corpus text, not rich markup: `build-[v2]` lost its `[v2]`, and a `[/…]` in a
    printed value raised rich's MarkupError."""
    out = tmp_path / "build-[v2]"
    r = run("build", corpus_dir, "--tokenizer", qwen3_tokenizer_dir, "--out", out, "--max-length", 128)
    assert r.exit_code == 0, r.output
    assert f"built {out} " in r.output


def test_judge_disagreements_print_model_output_as_text():
    """A prediction holding `[/INST]` (a chat-template tag a model echoes) crashed `eval judge`'s table."""
    import io

    from rich.console import Console

    from malmungchi.eval.judge_report import disagreements_table

    s = {"n_disagreements": 1, "disagreements": [{"id": "d/[x]:t0", "score": 1, "em_normalized": 0,
                                                   "char_f1": 0.5, "answer": "[bold]정답", "prediction": "답 [/INST]",
                                                   "reason": "[/] 비슷함"}]}
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(disagreements_table(s))
    text = buf.getvalue()
    assert "[/INST]" in text and "[bold]정답" in text and "d/[x]:t0" in text and "[/] 비슷함" in text


def test_the_length_histogram_spreads_short_sequences_over_its_bins():
    """Q/A turns of ~30 tokens in 2,048-token rows all fell in the first bin (1–204); bins now end at the longest
    sequence when every one is under half of max_length, and at max_length otherwise."""
    import numpy as np

    from malmungchi.prep.stats import _histogram

    short = np.array([9, 17, 25, 30, 31, 40, 71])
    bins = _histogram(short, 2048)
    assert bins[-1]["hi"] == 80 and sum(b["count"] for b in bins) == len(short)
    assert max(b["count"] for b in bins) < len(short)  # spread out
    for b in _histogram(np.array([8, 16, 24, 32, 40, 3, 1]), 2048):  # a length on an edge is in the bin it names
        assert b["count"] == sum(1 for n in (8, 16, 24, 32, 40, 3, 1) if b["lo"] <= n <= b["hi"]), b
    assert [b["count"] for b in _histogram(np.array([3, 3, 3]), 2048)][:4] == [0, 0, 3, 0]  # bins of one
    assert _histogram(np.array([100, 1500]), 2048)[-1]["hi"] == 2048
    assert sum(b["count"] for b in _histogram(np.array([], dtype=np.int64), 2048)) == 0


def test_stats_of_a_corpus_without_markers_says_so(tmp_path, qwen3_tokenizer_dir):
    d = tmp_path / "c"
    write(d, "pairs.csv", "Q,A\n안녕하세요,반가워요\n잘 지내?,응 잘 지내\n")
    r = run("stats", d, "--tokenizer", qwen3_tokenizer_dir, "--mode", "chat", "--prompt-column", "Q",
            "--answer-column", "A", "--split-ratios", "1,0,0")
    assert r.exit_code == 0, r.output
    assert "markers: none in this corpus" in r.output and "┃ marker" not in r.output
