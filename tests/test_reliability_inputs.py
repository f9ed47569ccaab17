"""Reliability on a corpus of bad inputs generated here: binary, CP949 and UTF-16 files, a 50 MB single line,
10,000 tiny files, empty files, invalid JSONL lines, a table without the asked columns, an unreadable file (mocked:
the tests run as root) and symlink loops. Lint and build never raise; every problem has a diagnostic or a
manifest entry; with --allow-errors the manifest accounts for every document the parser finds."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from build_helpers import BOOK, book, write
from malmungchi.cli import main
from malmungchi.corpus import source
from malmungchi.prep.ledger import DropKind

UNCLOSED = "|START_OF_DIALOGUE|>\n철수: 엉뚱한 끝\n|END_OF_TITLE|>\n|END_OF_BOOK|>\n"  # S002: that book is dropped


def invoke(*args, cwd: Path):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2)
    return result


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """A folder `bad/` of small broken inputs beside good ones (the 50 MB line and the 10,000 files are below)."""
    root = tmp_path_factory.mktemp("bad")
    (root / "malmungchi.toml").write_text("", encoding="utf-8")
    d = root / "bad"
    write(d, "good.txt", book(1) + book(2))
    write(d, "broken.txt", book(3) + UNCLOSED + book(4))
    (d / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (d / "legacy.txt").write_bytes(BOOK.encode("cp949"))
    (d / "wide.txt").write_bytes(BOOK.encode("utf-16"))
    (d / "empty.txt").write_bytes(b"")
    (d / "secret.txt").write_text(book(5), encoding="utf-8")  # unreadable (mocked)
    write(d, "data.jsonl", json.dumps({"text": book(6)}, ensure_ascii=False) + "\n{\"text\": \"닫히지 않은\n"
          + json.dumps({"title": "텍스트 없음"}, ensure_ascii=False) + "\n\n"
          + json.dumps({"messages": [{"role": "user", "content": "안녕?"},
                                     {"role": "assistant", "content": "안녕하세요."}]}, ensure_ascii=False) + "\n")
    write(d, "pairs.csv", "Q,A\n오늘 날씨 어때?,맑아요.\n점심 뭐 먹지?,비빔밥이요.\n")
    write(d, "other.csv", "질문,대답\n이름이 뭐예요?,민지예요.\n")  # no Q/A columns
    os.symlink("loop_b.txt", d / "loop_a.txt")
    os.symlink("loop_a.txt", d / "loop_b.txt")
    (d / "sub").mkdir()
    write(d / "sub", "inner.txt", book(7))
    os.symlink("..", d / "sub" / "up")  # a folder loop: visited once
    return root


@pytest.fixture
def unreadable(monkeypatch):
    real_open = open

    def guarded_open(path, *args, **kwargs):
        if str(path).endswith("secret.txt"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(source, "open", guarded_open, raising=False)


EXPECTED_LINT = {
    ("bad/binary.txt", "F003"), ("bad/legacy.txt", "F001"), ("bad/wide.txt", "F002"), ("bad/empty.txt", "F004"),
    ("bad/secret.txt", "F007"), ("bad/data.jsonl", "D001"), ("bad/data.jsonl", "D002"), ("bad/loop_a.txt", "F007"),
    ("bad/loop_b.txt", "F007"), ("bad/broken.txt", "S002"), ("bad/sub/up", "F007"),
}


def test_lint_reports_every_bad_file(bad, unreadable):
    r = invoke("corpus", "lint", "bad", "--output-format", "json", "-j", "1", cwd=bad)
    assert r.exit_code == 1, r.output
    found = {(d["path"], d["code"]) for d in json.loads(r.stdout)}
    assert EXPECTED_LINT <= found, EXPECTED_LINT - found
    assert not {p for p, _ in found} & {"bad/good.txt", "bad/sub/inner.txt"}
    # the Q/A table is good once its columns are named (the build below names them on its command line, which
    # lint does not see): lint's only word on it is that (D006)
    assert {c for p, c in found if p == "bad/pairs.csv"} == {"D006"}
    secret = [d for d in json.loads(r.stdout) if d["path"] == "bad/secret.txt"]
    assert [d["message"] for d in secret] == ["cannot read file: permission denied"]


def test_build_refuses_and_names_every_broken_file(bad, unreadable, qwen3_tokenizer_dir):
    r = invoke("corpus", "build", "bad", "--tokenizer", qwen3_tokenizer_dir, "--out", "refused",
               "--prompt-column", "Q", "--answer-column", "A", cwd=bad)
    assert r.exit_code == 1, r.output
    for name, code in [("binary.txt", "F003"), ("legacy.txt", "F001"), ("wide.txt", "F002"),
                       ("secret.txt", "F007"), ("data.jsonl", "D001"), ("data.jsonl", "D002"),
                       ("loop_a.txt", "F007"), ("broken.txt", "S002"), ("other.csv", "D003"),
                       ("sub/up", "F007")]:  # the folder loop: lint's error, so the build's too
        assert any(name in line and code in line for line in r.stderr.splitlines()), (name, code, r.stderr)
    assert "no column 'Q'" in r.stderr and "--allow-errors" in r.stderr
    assert not (bad / "refused").exists()
    assert not [p for p in bad.iterdir() if p.name.startswith(".refused")]


def _parser_documents(bad: Path) -> dict[str, set[str]]:
    """What the stage-1 parser finds, file by file: the ids every manifest entry must account for."""
    from malmungchi.corpus.parse import parse_text
    from malmungchi.schemas.registry import default_registry

    out: dict[str, set[str]] = {}
    for name in ("good.txt", "broken.txt", "sub/inner.txt"):
        key = f"bad/{name}"
        parsed = parse_text((bad / "bad" / name).read_text(encoding="utf-8"), key, default_registry(), tree=True)
        out[key] = {doc.id for doc in parsed.documents}
    out["bad/data.jsonl"] = {"bad/data.jsonl#0", "bad/data.jsonl:2", "bad/data.jsonl:3", "bad/data.jsonl#2"}
    out["bad/pairs.csv"] = {"bad/pairs.csv#0", "bad/pairs.csv#1"}
    for name in ("binary.txt", "legacy.txt", "wide.txt", "secret.txt", "other.csv", "loop_a.txt", "loop_b.txt"):
        out[f"bad/{name}"] = {f"bad/{name}"}  # the whole file is refused: one entry
    out["bad/empty.txt"] = set()
    return out


def test_build_with_allow_errors_accounts_for_every_document(bad, unreadable, qwen3_tokenizer_dir):
    r = invoke("corpus", "build", "bad", "--tokenizer", qwen3_tokenizer_dir, "--out", "built", "--allow-errors",
               "--prompt-column", "Q", "--answer-column", "A", "--max-length", 256, "--split-ratios", "1,0,0",
               "--json", cwd=bad)
    assert r.exit_code == 0, r.output
    m = json.loads((bad / "built" / "manifest.json").read_text())
    expected = _parser_documents(bad)
    assert {i["path"] for i in m["inputs"]} == set(expected)
    assert len(expected["bad/good.txt"]) == 2 and len(expected["bad/broken.txt"]) == 3
    docs = {d["id"]: d for d in m["documents"]}
    assert len(docs) == len(m["documents"]), "a document listed twice"
    by_source: dict[str, set[str]] = {}
    for d in m["documents"]:
        by_source.setdefault(d["source"], set()).add(d["id"])
    assert {k: v for k, v in by_source.items()} == {k: v for k, v in expected.items() if v}
    kept = {i for i, d in docs.items() if d["status"] == "kept"}
    dropped = {i: d["reason"] for i, d in docs.items() if d["status"] == "dropped"}
    assert len(kept) + len(dropped) == sum(len(v) for v in expected.values())
    assert kept == {"bad/good.txt#0", "bad/good.txt#1", "bad/broken.txt#0", "bad/broken.txt#2",
                    "bad/sub/inner.txt#0", "bad/data.jsonl#0", "bad/data.jsonl#2", "bad/pairs.csv#0",
                    "bad/pairs.csv#1"}
    for doc_id, code in [("bad/binary.txt", "F003"), ("bad/legacy.txt", "F001"), ("bad/wide.txt", "F002"),
                         ("bad/secret.txt", "F007"), ("bad/loop_a.txt", "F007"), ("bad/loop_b.txt", "F007"),
                         ("bad/other.csv", "D003"), ("bad/broken.txt#1", "S002"), ("bad/data.jsonl:2", "D001"),
                         ("bad/data.jsonl:3", "D002")]:
        assert code in dropped[doc_id], (doc_id, dropped[doc_id])
    assert "permission denied" in dropped["bad/secret.txt"] and "no column 'Q'" in dropped["bad/other.csv"]
    assert all(docs[i]["tokens"] > 0 and docs[i]["split"] == "train" for i in kept)


def test_missing_column_in_every_table_is_still_one_clear_refusal(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "t", "pairs.csv", "Question,Answer\n안녕?,안녕하세요.\n")
    r = invoke("corpus", "build", "t", "--tokenizer", qwen3_tokenizer_dir, "--out", "o", "--prompt-column",
               "Questio", "--answer-column", "Answer", cwd=tmp_path)
    assert r.exit_code == 1
    assert "no column 'Questio' for --prompt-column (columns: Question, Answer); did you mean 'Question'?" in r.stderr
    assert not (tmp_path / "o").exists()


def test_unlistable_folder_refuses_the_build(tmp_path, monkeypatch, qwen3_tokenizer_dir):
    # the build used to skip a folder it could not list, silently losing its documents
    write(tmp_path / "c", "a.txt", book(1))
    write(tmp_path / "c" / "locked", "b.txt", book(2))
    real_scandir = os.scandir

    def guarded_scandir(path="."):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", guarded_scandir)
    r = invoke("corpus", "build", "c", "--tokenizer", qwen3_tokenizer_dir, "--out", "o", "--allow-errors",
               cwd=tmp_path)
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == ["error: c/locked: cannot read folder: permission denied"]
    assert not (tmp_path / "o").exists()


# -- 50 MB on one line ---------------------------------------------------------------------------------------------

def _measured(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run `python -m malmungchi ARGS` in a fresh process; (result, seconds, peak RSS in MiB of it and its
    workers)."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
             "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
             "sys.exit(r.returncode)")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "malmungchi", *args], cwd=cwd,
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    seconds = time.monotonic() - t0
    rss = int(r.stderr.rsplit("MAXRSS", 1)[1].split()[0]) // 1024
    return r, seconds, rss


@pytest.fixture(scope="module")
def one_line(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("oneline")
    d = root / "c"
    d.mkdir()
    unit = "가나다라마바사 아자차카타파하 ".encode() * 4096  # ~180 KB, written ~290 times without building 50 MB
    with open(d / "big.txt", "wb") as fh:
        written = 0
        while written < 50 << 20:
            fh.write(unit)
            written += len(unit)
        fh.write(b"\n\n" + book(1).encode())
    write(d, "small.txt", book(2))
    return root


def test_a_50mb_single_line_lints_and_builds_in_bounded_time_and_memory(one_line, qwen3_tokenizer_dir):
    r, seconds, rss = _measured(["corpus", "lint", "c", "--output-format", "text"], one_line)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stderr
    assert "c/big.txt:1:1: F008 line of" in r.stdout
    assert seconds < 60 and rss < 1500, (seconds, rss)

    # the build used to tokenize the whole 50 MB paragraph (millions of tokens with offsets: ~8 GB, minutes)
    # only to drop it as longer than a row; now a segment that cannot fit is never tokenized whole
    r, seconds, rss = _measured(["corpus", "build", "c", "--tokenizer", str(qwen3_tokenizer_dir), "--out", "o",
                                 "--split-ratios", "1,0,0"], one_line)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert seconds < 90 and rss < 2000, (seconds, rss)
    m = json.loads((one_line / "o" / "manifest.json").read_text())
    docs = {d["id"]: d for d in m["documents"]}
    assert set(docs) == {"c/big.txt#0", "c/small.txt#0"}
    big = docs["c/big.txt#0"]
    assert big["status"] == "kept" and "one segment of about" in big["reason"] and big["tokens"] > 10_000_000
    lost = m["figures"]["truncation"]
    assert lost["lost_pieces"] == 1 and lost["lost_tokens"] > 10_000_000
    assert big["mostly_lost"] and big["lost_tokens"] == lost["lost_tokens"] and lost["documents_mostly_lost"] == 1
    assert m["splits"]["train"]["documents"] == 2  # what follows the long paragraph (book 1) is kept


def test_dropping_a_hopeless_segment_keeps_the_rest_of_the_document(qwen3_tokenizer_dir):
    # the same result as tokenizing everything: the segments around the long one are chunked as before
    from build_helpers import make_plan
    from malmungchi.prep import encode

    long_para = "가나다라 " * 5_000  # 25,000 characters: over 64 * 128 * 2
    text = f"첫 문단입니다.\n\n{long_para}\n\n|START_OF_DIALOGUE|>\n철수: 안녕?\n영희: 응, 안녕.\n|END_OF_DIALOGUE|>\n" \
           "|END_OF_BOOK|>\n"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = write(Path(tmp), "a.txt", text)
        whole = make_plan([p], qwen3_tokenizer_dir, max_length=64, splits={"train": 0, "validation": 0, "test": 1})
        assert len(whole.eval_items) == 2
        old = encode.hopeless_chars
        encode.hopeless_chars = lambda backend, max_length, longest=None: 10 ** 9  # the old path: tokenize everything
        try:
            full = make_plan([p], qwen3_tokenizer_dir, max_length=64,
                             splits={"train": 0, "validation": 0, "test": 1})
            dropped = make_plan([p], qwen3_tokenizer_dir, max_length=64, long_documents="drop")
        finally:
            encode.hopeless_chars = old
        (doc,) = dropped.documents
        assert doc.kind is DropKind.TOO_LONG and "(--long-documents drop)" in doc.reason
        (fast,) = make_plan([p], qwen3_tokenizer_dir, max_length=64, long_documents="drop").documents
        assert fast.kind is DropKind.TOO_LONG and "(--long-documents drop)" in fast.reason
        assert fast.tokens == pytest.approx(doc.tokens, rel=0.01)
    assert [q.ids.tolist() for q in whole.splits["test"]] == [q.ids.tolist() for q in full.splits["test"]]
    assert whole.eval_items == full.eval_items
    assert [x.tokens for x in whole.lost] == pytest.approx([x.tokens for x in full.lost], rel=0.01)
    # tokens per syllable are over the text that was tokenized: the dropped paragraph's 20,000 syllables (and
    # its thousands of lost tokens) count in neither, so the figure is what the rest of the book costs
    from malmungchi.prep.stats import report

    rest = "첫 문단입니다. 철수: 안녕? 영희: 응, 안녕."
    korean = report(whole)["korean"]
    assert korean["hangul_syllables"] == sum(0xAC00 <= ord(c) <= 0xD7A3 for c in rest)
    assert 0.5 < korean["tokens_per_syllable"] < 3


# -- 10,000 tiny files ---------------------------------------------------------------------------------------------

def test_ten_thousand_tiny_files(tmp_path, qwen3_tokenizer_dir):
    # lint reads all 10,000; the build reads the first 2,000 (10,000 build in ~15 s alone: too long for the suite)
    d = tmp_path / "many"
    (d / "first").mkdir(parents=True)
    for i in range(10_000):
        text = f"|START_OF_TITLE|>제목 {i}|END_OF_TITLE|>\n문장 {i}번. |SOUND|>(소리)\n|END_OF_BOOK|>\n"
        (d / ("first" if i < 2000 else "") / f"f{i:05d}.txt").write_text(text, encoding="utf-8")
    (d / "first" / "f00007.txt").write_text("<|SOUND|> 문장 7번.\n|END_OF_BOOK|>\n", encoding="utf-8")  # M003, among 10,000
    t0 = time.monotonic()
    r = invoke("corpus", "lint", "many", "--output-format", "text", cwd=tmp_path)
    assert r.exit_code == 1 and "many/first/f00007.txt:1:1: M003" in r.stdout
    assert "Found 1 problem" in r.stdout
    assert time.monotonic() - t0 < 60
    t0 = time.monotonic()
    r = invoke("corpus", "build", "many/first", "--tokenizer", qwen3_tokenizer_dir, "--out", "o", "--allow-errors",
               "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    assert time.monotonic() - t0 < 120
    m = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert len(m["inputs"]) == 2000 and len(m["documents"]) == 2000
    assert sum(d["status"] == "kept" for d in m["documents"]) == 2000  # M003 is a warning: the file is kept


def test_half_a_surrogate_pair_in_a_jsonl_record_is_a_clear_refusal(tmp_path, qwen3_tokenizer_dir):
    # `\ud83d` alone (an emoji cut in half by whatever wrote the file) is valid JSON but no character: it once
    # crashed the build with a traceback where the text was hashed
    records = ['{"text": "|START_OF_TITLE|>온전한 이모지|END_OF_TITLE|>\\n\\n웃는 얼굴 \\ud83d\\ude00 하나.\\n|END_OF_BOOK|>\\n"}',
               '{"text": "|START_OF_TITLE|>잘린 이모지|END_OF_TITLE|>\\n\\n반쪽만 \\ud83d 남았다.\\n|END_OF_BOOK|>\\n"}',
               '{"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "\\uDE00 응"}]}']
    write(tmp_path / "j", "s.jsonl", "\n".join(records) + "\n")
    r = invoke("corpus", "build", "j", "--tokenizer", qwen3_tokenizer_dir, "--out", "o", cwd=tmp_path)
    assert r.exit_code == 1 and not (tmp_path / "o").exists(), r.output
    lines = [x for x in r.stderr.splitlines() if "D005" in x]
    assert len(lines) == 2 and all("s.jsonl" in x for x in lines), r.stderr
    r = invoke("corpus", "build", "j", "--tokenizer", qwen3_tokenizer_dir, "--out", "o", "--allow-errors",
               "--split-ratios", "1,0,0", cwd=tmp_path)
    assert r.exit_code == 0, r.output
    docs = {d["id"]: d for d in json.loads((tmp_path / "o" / "manifest.json").read_text())["documents"]}
    assert docs["j/s.jsonl#0"]["status"] == "kept"
    assert {i for i, d in docs.items() if d["status"] == "dropped" and "D005" in d["reason"]} == \
        {"j/s.jsonl:2", "j/s.jsonl:3"}
    r = invoke("corpus", "lint", "j", cwd=tmp_path)
    assert r.exit_code == 1 and r.output.count("D005") == 2, r.output
