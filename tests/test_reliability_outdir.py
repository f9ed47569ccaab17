"""`--force` never deletes what is not ours: an output folder that is an input, holds one or lies inside one, or
is not an earlier build, is refused with one line (exit 2) and left exactly as it was."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from build_helpers import book, write
from malmungchi.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def project(tmp_path):
    """A user's folder: the corpus and unrelated files beside and inside it."""
    corpus = tmp_path / "project" / "corpus"
    write(corpus, "a.txt", "".join(book(i) for i in range(4)))
    write(corpus, "notes.md", "# 내 메모\n")
    (corpus / "draft.docx").write_bytes(b"PK\x03\x04 not really a docx")
    write(tmp_path / "project", "README.md", "my project\n")
    return tmp_path / "project"


@pytest.mark.parametrize("where", ["corpus", ".", "corpus/a.txt"])
def test_build_force_over_an_input_or_its_parent_is_refused(project, qwen3_tokenizer_dir, where):
    before = snapshot(project)
    out = project / where
    r = run("corpus", "build", project / "corpus", "--tokenizer", qwen3_tokenizer_dir, "--out", out, "--force")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "outside your inputs" in lines[0], lines
    assert snapshot(project) == before


def test_build_force_over_a_folder_that_is_not_a_build_is_refused(project, qwen3_tokenizer_dir, tmp_path):
    other = tmp_path / "documents"
    write(other, "thesis.txt", "내 논문\n")
    before = snapshot(other)
    r = run("corpus", "build", project / "corpus", "--tokenizer", qwen3_tokenizer_dir, "--out", other, "--force")
    assert r.exit_code == 2
    assert "not a build directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert snapshot(other) == before


def test_build_force_replaces_an_earlier_build(project, qwen3_tokenizer_dir, tmp_path):
    out = tmp_path / "build"
    args = ("corpus", "build", project / "corpus", "--tokenizer", qwen3_tokenizer_dir, "--out", out,
            "--max-length", 128)
    assert run(*args).exit_code == 0
    first = snapshot(out)
    r = run(*args, "--force")
    assert r.exit_code == 0, r.output
    assert snapshot(out) == first


def test_write_build_refuses_a_folder_holding_an_input(project, qwen3_tokenizer_dir):
    """The library enforces it too: a plan whose sources lie under `out` is never written over them."""
    from build_helpers import make_plan
    from malmungchi.prep.write import OutputExists, write_build

    before = snapshot(project)
    p = make_plan([project / "corpus"], qwen3_tokenizer_dir, max_length=128)
    with pytest.raises(OutputExists, match="contains the input"):
        write_build(p, project, force=True)
    assert snapshot(project) == before


def test_train_out_inside_the_build_or_the_model_is_refused(tmp_path, qwen3_tokenizer_dir):
    from train_helpers import make_build, make_model

    build = make_build(tmp_path / "build", qwen3_tokenizer_dir)
    model = make_model(tmp_path / "model", qwen3_tokenizer_dir)
    for out in (build / "run", model / "run", tmp_path):
        r = run("train", "run", build, "--model", model, "--out", out, "--quant", "none", "--max-steps", 1)
        assert r.exit_code == 2, r.output
        assert "outside your inputs" in r.stderr
        assert not (out / "checkpoints").exists() and not (out / "run_manifest.json").exists()


def test_a_build_inside_its_corpus_is_not_read_back(project, qwen3_tokenizer_dir, tmp_path):
    """Chat mode writes eval/test.jsonl: read back as input it became new documents and moved test items."""
    import json

    corpus = project / "corpus"
    args = ("--tokenizer", qwen3_tokenizer_dir, "--mode", "chat", "--max-length", 128)
    assert run("corpus", "build", corpus, *args, "--out", corpus / "build").exit_code == 0
    r = run("corpus", "build", corpus, *args, "--out", tmp_path / "again")
    assert r.exit_code == 0, r.output
    first = json.loads((corpus / "build" / "manifest.json").read_text())
    again = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [i["path"] for i in again["inputs"]] == [i["path"] for i in first["inputs"]] == ["corpus/a.txt"]
    assert [(d["id"], d["split"]) for d in again["documents"]] == [(d["id"], d["split"]) for d in first["documents"]]
    assert any("skipped" in n and "build directory" in n for n in again["figures"]["notes"])
    lint = run("corpus", "lint", corpus, "--output-format", "text")
    assert "skipped" in lint.stderr and "build directory" in lint.stderr
    assert "build/eval/test.jsonl" not in lint.output


DEAD_PID = 99999999  # above any pid_max: never a live process


def test_a_build_killed_between_its_two_renames_is_restored(project, qwen3_tokenizer_dir, tmp_path):
    out = tmp_path / "build"
    args = ("corpus", "build", project / "corpus", "--tokenizer", qwen3_tokenizer_dir, "--out", out,
            "--max-length", 128)
    assert run(*args).exit_code == 0
    before = snapshot(out)
    # the state a kill leaves after `out → .old/build` and before `.tmp → out`
    old = tmp_path / f".build.{DEAD_PID}.abc.old"
    old.mkdir()
    out.rename(old / "build")
    half = tmp_path / f".build.{DEAD_PID}.def.tmp"
    (half / "data").mkdir(parents=True)
    r = run(*args)  # without --force: the earlier build is back, and protected as before
    assert r.exit_code == 2 and "already exists" in r.stderr and "restored" in r.stderr
    assert snapshot(out) == before
    r = run(*args, "--force")
    assert r.exit_code == 0, r.output
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "project"]


def test_lint_fix_removes_what_a_killed_fix_left(tmp_path):
    corpus = tmp_path / "c"
    write(corpus, "a.txt", "|start_of_title|>제목|END_OF_TITLE|>\n본문.\n|END_OF_BOOK|>\n")
    orphan = corpus / f".malmungchi-{DEAD_PID}-x1y2.tmp"
    orphan.write_bytes(b"half a file")
    live = corpus / f".malmungchi-{os.getpid()}-z3.tmp"  # a writer still running keeps its file
    live.write_bytes(b"in progress")
    r = run("corpus", "lint", corpus, "--fix")
    assert not orphan.exists() and live.exists()
    assert "removed" in r.stderr and orphan.name in r.stderr
    assert "|START_OF_TITLE|>" in (corpus / "a.txt").read_text(encoding="utf-8")
