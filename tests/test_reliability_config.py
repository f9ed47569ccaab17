"""Configuration and usage errors in every stage: one clear line on stderr (with a "did you mean" where one
applies), exit status 2, no traceback, and nothing written (the --out folder or results file does not exist)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from build_helpers import book, write
from malmungchi.cli import main
from train_helpers import make_build, make_model  # noqa: F401


def refused(cwd: Path, *args, line: str, out: str = "o"):
    """Run the CLI in `cwd`; it must exit 2 with exactly one stderr line holding `line`, and write nothing."""
    before = sorted(p.name for p in cwd.iterdir())
    old = os.getcwd()
    os.chdir(cwd)
    try:
        r = CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(old)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and line in lines[0], r.stderr
    assert r.stdout == ""
    assert not (cwd / out).exists()
    assert sorted(p.name for p in cwd.iterdir()) == before, "something was written"
    return lines[0]


@pytest.fixture
def corpus(tmp_path) -> Path:
    write(tmp_path, "a.txt", book(1) + book(2))
    return tmp_path


@pytest.mark.parametrize("policy,line", [
    ("SOUND=strp", "unknown policy 'strp' (did you mean 'strip'?)"),
    ("SOUND", "--policy 'SOUND': write NAME=POLICY"),
])
def test_bad_policy_flags(corpus, qwen3_tokenizer_dir, policy, line):
    refused(corpus, "corpus", "build", "a.txt", "--tokenizer", qwen3_tokenizer_dir, "--out", "o", "--policy", policy,
            line=line)


def test_unknown_policy_marker_name(corpus, qwen3_tokenizer_dir):
    line = refused(corpus, "corpus", "build", "a.txt", "--tokenizer", qwen3_tokenizer_dir, "--out", "o",
                   "--policy", "SOUDN=strip", line="SOUDN")
    assert "did you mean 'SOUND'" in line


@pytest.mark.parametrize("toml,line", [
    ("[build]\nmax_lenght = 10\n", "unknown key 'build.max_lenght' (did you mean 'max_length'?)"),
    ("[biuld]\nmax_length = 10\n", "unknown key 'biuld' (did you mean 'build'?)"),
    ("[build.policies]\nSOUND = \"strp\"\n", "unknown policy 'strp' (did you mean 'strip'?)"),
    ("[build]\nmax_length = \"long\"\n", "build.max_length"),
    ("[build\n", "not valid TOML"),
    ("[markers.LAUGH]\nkind = \"inlin\"\n", "markers.LAUGH.kind"),
    ("[train]\nlora_rr = 4\n", "did you mean 'lora_r'?"),
])
def test_config_file_errors(corpus, qwen3_tokenizer_dir, toml, line):
    (corpus / "malmungchi.toml").write_text(toml, encoding="utf-8")
    got = refused(corpus, "corpus", "build", "a.txt", "--tokenizer", qwen3_tokenizer_dir, "--out", "o", line=line)
    assert "malmungchi.toml" in got
    refused(corpus, "corpus", "lint", "a.txt", line=line)  # every stage reads the same file, and refuses it


def test_missing_tokenizer_path(corpus):
    refused(corpus, "corpus", "build", "a.txt", "--tokenizer", "./no-tokenizer", "--out", "o",
            line="tokenizer './no-tokenizer': no such directory")
    refused(corpus, "corpus", "build", "a.txt", "--out", "o", line="no tokenizer: give --tokenizer")


def test_missing_inputs(corpus, qwen3_tokenizer_dir):
    refused(corpus, "corpus", "build", "nope.txt", "--tokenizer", qwen3_tokenizer_dir, "--out", "o",
            line="nope.txt: no such file or folder")


@pytest.mark.parametrize("command", ["build", "export"])
def test_no_tokenizer_and_missing_inputs_are_said_together(corpus, command):
    """Every problem of the options and inputs at once: fixing the tokenizer must not reveal a second error."""
    old = os.getcwd()
    os.chdir(corpus)
    try:
        r = CliRunner().invoke(main, ["corpus", command, "nope.txt", "--out", "o",
                                      *(["--format", "messages"] if command == "export" else [])])
    finally:
        os.chdir(old)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2 and "no tokenizer: give --tokenizer" in lines[0] and "nope.txt: no such file" in lines[1]
    assert not (corpus / "o").exists()


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory, qwen3_tokenizer_dir) -> Path:
    return make_build(tmp_path_factory.mktemp("build"), qwen3_tokenizer_dir)


def test_train_missing_model_and_build(tmp_path, build_dir):
    line = refused(tmp_path, "train", "run", build_dir, "--model", "./no-model", "--out", "run", "--quant", "none",
                   line="no-model", out="run")
    assert "download" in line or "cache" in line or "no such" in line, line
    refused(tmp_path, "train", "run", "./no-build", "--model", "./no-model", "--out", "run", "--quant", "none",
            line="no-build", out="run")
    (tmp_path / "malmungchi.toml").write_text("[train.args]\nnum_train_epoch = 1\n", encoding="utf-8")
    refused(tmp_path, "train", "run", build_dir, "--model", "./no-model", "--out", "run", "--quant", "none",
            "--config", "malmungchi.toml", line="num_train_epoch", out="run")


def test_eval_missing_run_or_model(tmp_path, build_dir, qwen3_tokenizer_dir):
    text_build = tmp_path / "b"
    write(tmp_path / "c", "a.txt", "".join(book(i) for i in range(6)))
    r = CliRunner().invoke(main, ["corpus", "build", str(tmp_path / "c"), "--tokenizer", str(qwen3_tokenizer_dir),
                                  "--out", str(text_build), "--split-ratios", "0,0,1"])
    assert r.exit_code == 0, r.output
    work = tmp_path / "w"
    work.mkdir()
    # regression: a text-mode build's "note: generation stops at a line break" came before the error line
    refused(work, "eval", "run", "./no-run", "--data", text_build, "--output", "res.jsonl",
            line="no-run", out="res.jsonl")
    refused(work, "eval", "run", "./no-run", "--data", "./no-data", "--output", "res.jsonl",
            line="no-data", out="res.jsonl")
    refused(work, "eval", "run", "./no-run", "--data", build_dir, "--output", "res.jsonl",  # no eval/test.jsonl
            line="a folder without eval/test.jsonl", out="res.jsonl")
    (work / "empty").mkdir()  # a folder that is neither a run nor a model
    refused(work, "eval", "run", "empty", "--data", text_build, "--output", "res.jsonl",
            line="empty", out="res.jsonl")
