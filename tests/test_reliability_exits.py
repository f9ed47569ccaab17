"""Exit codes a script can rely on: an empty build is an error (1) with the counts, an uninstalled tracker is a
usage error (2) before any work, Ctrl-C is 130 with one line and nothing half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

from click.testing import CliRunner

from build_helpers import write
from malmungchi.cli import main
from train_helpers import tiny_build, tiny_model  # noqa: F401 - fixtures


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_an_empty_input_is_not_a_build(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "c", "empty.txt", "")
    r = run("corpus", "build", tmp_path / "c", "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "b")
    assert r.exit_code == 1
    assert "nothing to train on: 0 training rows" in r.stderr and "0 document(s) found" in r.stderr
    assert not (tmp_path / "b").exists()
    stats = run("corpus", "stats", tmp_path / "c", "--tokenizer", qwen3_tokenizer_dir)
    assert stats.exit_code == 0 and "None" not in stats.output and "n/a tokens per Hangul syllable" in stats.output


def test_every_document_dropped_is_not_a_build(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "c", "broken.txt", "|START_OF_DIALOGUE|>\n철수: 엉뚱한 끝\n|END_OF_TITLE|>\n|END_OF_BOOK|>\n")  # S002
    r = run("corpus", "build", tmp_path / "c", "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "b",
            "--allow-errors")
    assert r.exit_code == 1
    assert "1 document(s) found, 0 kept, 1 dropped: 1 lint_error (e.g. " in r.stderr  # why, by kind
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()


def test_a_lone_document_split_off_to_test_says_how_to_train_on_it(tmp_path, qwen3_tokenizer_dir):
    """One short book whose identity the split ratios send to test: not a problem with the inputs, and the error
    says which option trains on it (and that option builds)."""
    write(tmp_path / "c", "a.txt", "|START_OF_TITLE|>한글|END_OF_TITLE|>\n\n자모 분리된 글.\n|END_OF_BOOK|>\n")
    r = run("corpus", "build", tmp_path / "c", "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "b")
    assert r.exit_code == 1 and "test 1 rows" in r.stderr and "--split-ratios 1,0,0" in r.stderr, r.stderr
    assert "check the inputs" not in r.stderr and not (tmp_path / "b").exists()
    r = run("corpus", "build", tmp_path / "c", "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "b",
            "--split-ratios", "1,0,0")
    assert r.exit_code == 0, r.output


def test_a_tracker_that_is_not_installed_is_refused_before_any_work(tmp_path, tiny_build, tiny_model):
    from transformers.integrations import get_available_reporting_integrations

    missing = next(t for t in ("wandb", "clearml", "neptune", "comet_ml")
                   if t not in get_available_reporting_integrations())
    for tracker, what in ((missing, "not installed"), ("wandbb", "not a tracker")):
        out = tmp_path / tracker
        r = run("train", "run", tiny_build, "--model", tiny_model, "--out", out, "--quant", "none",
                "--report-to", tracker)
        assert r.exit_code == 2, r.output
        assert what in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_ctrl_c_in_a_build_is_130_and_leaves_nothing(tmp_path, qwen3_tokenizer_dir):
    sample = Path(str(resources.files("malmungchi") / "data" / "sample"))
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(sample.glob("*.txt")))
    corpus = tmp_path / "c"
    for i in range(80):  # ~4 MB: several seconds of work on any machine
        write(corpus, f"f{i}.txt", text.replace("|START_OF_TITLE|>", f"|START_OF_TITLE|>{i} "))
    proc = subprocess.Popen([sys.executable, "-m", "malmungchi", "corpus", "build", str(corpus), "--tokenizer",
                             str(qwen3_tokenizer_dir), "--out", str(tmp_path / "b")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-500:])
    assert err.strip().splitlines() == ["interrupted (Ctrl-C); nothing half-written was left behind"]
    assert sorted(os.listdir(tmp_path)) == ["c"]


def _cli_process(*args: str) -> subprocess.CompletedProcess:
    """The `malmungchi` command as its console script runs it (`cli.run`), in a process that reports at exit
    whether the collector still had the objects the command made in its reach."""
    code = ("import atexit, gc, sys; atexit.register(lambda: print('frozen:', gc.get_freeze_count() > 0)); "
            f"sys.argv = ['malmungchi', *{list(args)!r}]; from malmungchi.cli import run; run()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_command_exits_without_a_last_collection_and_keeps_its_exit_code(tmp_path):
    """Interpreter shutdown after a 51.6 MB build spent about 0.5 s in a last collection over everything the
    build, transformers and torch made; the console script moves those objects out of its reach first, whatever
    the command's outcome."""
    ok = _cli_process("--version")
    assert ok.returncode == 0 and "malmungchi" in ok.stdout and "frozen: True" in ok.stdout
    bad = _cli_process("corpus", "build", str(tmp_path / "missing"), "--tokenizer", str(tmp_path / "t"),
                       "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "no such file or folder" in bad.stderr and "frozen: True" in bad.stdout


def test_a_chat_build_of_books_without_dialogue_says_what_chat_mode_reads(tmp_path, qwen3_tokenizer_dir):
    write(tmp_path / "c", "a.txt", "|START_OF_TITLE|>산문|END_OF_TITLE|>\n\n대화가 없는 이야기.\n|END_OF_BOOK|>\n")
    r = run("corpus", "build", tmp_path / "c", "--tokenizer", qwen3_tokenizer_dir, "--out", tmp_path / "b",
            "--mode", "chat")
    assert r.exit_code == 1 and "1 no_dialogue" in r.stderr
    assert "chat mode trains on dialogues only" in r.stderr and "--mode text" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
