"""A .csv/.tsv built without column options names the options that fit it: a header-less transcript (the real
BACKSpeech slice) gets its speaker and text columns by number with --no-header, and that suggestion builds; a
Q/A table gets --prompt-column/--answer-column; a table that is no corpus (an index) is told how to leave it out.
`corpus lint` says the same first (D006), while the config names no columns."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.corpus.table_hint import column_hint

SLICE = Path(__file__).parent / "fixtures" / "backspeech" / "1uLA7axqouQ.head60.csv"


@pytest.mark.parametrize("columns, hint", [
    (["Q", "A", "label"], "--prompt-column Q --answer-column A"),
    (["질문", "답변"], "--prompt-column 질문 --answer-column 답변"),
    (["speaker", "utterance", "start"], "--speaker-column speaker --text-column utterance"),
    (["3.590", "8.840", "speaker#A", "네 코로노믹스 시간입니다. 어서오세요."],
     "--speaker-column 2 --text-column 3 --no-header"),
    (["0", "철수", "밥은 먹었어?"], "--speaker-column 1 --text-column 2 --no-header"),
    (["00:00:01", "Speaker 1", "네 맞아요"], "--speaker-column 1 --text-column 2 --no-header"),
    (["1.20", "3.40", "화자 A", "응 그래"], "--speaker-column 2 --text-column 3 --no-header"),
    (["3.5", "철수", "안녕"], "--speaker-column 1 --text-column 2 --no-header"),
    (["Question", "Answer", "Is it correct?"], "--prompt-column Question --answer-column Answer"),
    (["input", "instruction", "output"], "--prompt-column instruction --answer-column output"),
    (["Q", " A"], "--prompt-column Q --answer-column ' A'"),
    (["human", "gpt"], "--prompt-column human --answer-column gpt"),
])
def test_the_options_that_fit_the_header(columns, hint):
    assert hint in column_hint(columns)


@pytest.mark.parametrize("columns", [["ID", "Korean Title", "Translated Title", "Yale Romanization of Title",
                                      "Romanization of Author"], ["a", "b"], ["id", "score"],
                                     ["id", "Sent. No.", "Korean Title"]])
def test_no_guess_where_nothing_fits(columns):
    assert column_hint(columns) == ""


def _build(inputs, out, tok, *extra):
    return CliRunner().invoke(main, ["corpus", "build", str(inputs), "--tokenizer", tok, "--out", str(out),
                                     "--allow-errors", *extra])


def test_a_headerless_transcript_is_told_what_to_pass_and_that_builds(tmp_path, qwen3_tokenizer_dir):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "talk.csv").write_bytes(SLICE.read_bytes())
    r = _build(corpus, tmp_path / "b", qwen3_tokenizer_dir)
    assert r.exit_code == 2
    lines = [x for x in r.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "talk.csv" in lines[0] and "Traceback" not in r.output, r.output
    suggested = shlex.split(lines[0].split("try ", 1)[1].split(" (", 1)[0])
    assert suggested == ["--speaker-column", "2", "--text-column", "3", "--no-header"]
    r = _build(corpus, tmp_path / "b", qwen3_tokenizer_dir, *suggested)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "b" / "manifest.json").is_file()


def test_without_a_header_the_first_row_is_read_for_the_numbers(tmp_path, qwen3_tokenizer_dir):
    (tmp_path / "t.tsv").write_text("0.5\t철수\t밥은 먹었어?\n1.0\t영희\t응 먹었어.\n", encoding="utf-8")
    r = _build(tmp_path / "t.tsv", tmp_path / "b", qwen3_tokenizer_dir, "--no-header")
    assert r.exit_code == 2 and "--speaker-column 1 --text-column 2 --no-header" in r.stderr, r.output


def test_an_index_table_is_told_how_to_leave_it_out_and_that_option_does(tmp_path, qwen3_tokenizer_dir):
    """KoCoNovel's folder holds list_of_novels.csv beside the novels: the build names the option that leaves it out
    (it took a config file before `--exclude`), and lint, stats and build all take it."""
    corpus = tmp_path / "novels"
    corpus.mkdir()
    (corpus / "list.csv").write_text("ID,Korean Title,Author\n1,동백꽃,김유정\n", encoding="utf-8")
    (corpus / "a.txt").write_text("".join(f"|START_OF_TITLE|>책 {i}|END_OF_TITLE|>\n\n본문 {i}입니다.\n"
                                          "|END_OF_BOOK|>\n" for i in range(12)), encoding="utf-8")
    r = _build(corpus, tmp_path / "b", qwen3_tokenizer_dir)
    assert r.exit_code == 2 and "with --exclude NAME, or `[lint] exclude`" in r.stderr and "list.csv" in r.stderr
    r = _build(corpus, tmp_path / "b", qwen3_tokenizer_dir, "--exclude", "list.csv")
    assert r.exit_code == 0, r.output
    inputs = json.loads((tmp_path / "b" / "manifest.json").read_text())["inputs"]
    assert [Path(x["path"]).name for x in inputs] == ["a.txt"], inputs
    lint = CliRunner().invoke(main, ["corpus", "lint", str(corpus), "--exclude", "list.csv"])
    assert lint.exit_code == 0 and "D006" not in lint.output, lint.output
    assert "D006" in CliRunner().invoke(main, ["corpus", "lint", str(corpus)]).output


def _lint(path, cwd):
    import os

    old = os.getcwd()
    try:
        os.chdir(cwd)
        return CliRunner().invoke(main, ["corpus", "lint", str(path), "--output-format", "text"])
    finally:
        os.chdir(old)


def test_lint_says_the_same_before_the_build_refuses(tmp_path):
    """D006: lint warns about a table the build reads only with its columns named, with the same suggestion, and
    stops once the config names them; a table with a `text` column needs nothing."""
    (tmp_path / "malmungchi.toml").write_text("", encoding="utf-8")
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "talk.csv").write_bytes(SLICE.read_bytes())
    (corpus / "plain.csv").write_text("id,text\n1,안녕\n", encoding="utf-8")
    r = _lint(corpus, tmp_path)
    assert r.exit_code == 1
    found = [x for x in r.stdout.splitlines() if ": D006 " in x]
    assert len(found) == 1 and "talk.csv:1:1:" in found[0], r.stdout
    assert "--speaker-column 2 --text-column 3 --no-header" in found[0]
    (tmp_path / "malmungchi.toml").write_text('[build]\nheader = false\n', encoding="utf-8")
    r = _lint(corpus, tmp_path)
    assert "4 columns, no header" in r.stdout and "--speaker-column 2 --text-column 3" in r.stdout, r.stdout
    (tmp_path / "malmungchi.toml").write_text('[build]\nspeaker_column = "2"\ntext_column = "3"\nheader = false\n',
                                              encoding="utf-8")
    r = _lint(corpus, tmp_path)
    assert r.exit_code == 0 and "D006" not in r.stdout, r.stdout


def test_a_build_given_the_columns_reports_no_d006(tmp_path, qwen3_tokenizer_dir):
    (tmp_path / "talk.csv").write_bytes(SLICE.read_bytes())
    r = _build(tmp_path / "talk.csv", tmp_path / "b", qwen3_tokenizer_dir, "--speaker-column", "2", "--text-column",
               "3", "--no-header")
    assert r.exit_code == 0 and "D006" not in r.output, r.output


def test_lint_on_a_terminal_checks_the_columns_too(tmp_path):
    """The progress-bar path (stderr a terminal) passes the column check on as the plain path does."""
    import io

    from rich.console import Console

    from malmungchi.cli.corpus import _run_lint
    from malmungchi.corpus.table_hint import ColumnCheck
    from malmungchi.schemas.registry import default_registry

    (tmp_path / "talk.csv").write_bytes(SLICE.read_bytes())
    err = Console(file=io.StringIO(), force_terminal=True)
    run = _run_lint([str(tmp_path)], default_registry(), None, None, [], 1, err, ColumnCheck())
    assert [d.code for d in run.diagnostics] == ["D006"]
