"""Speech-transcript conventions (`--transcript-style kspon`) on a slice of a real BACKSpeech transcript: overlap
tags go, backchannels become BACKCHANNEL cues, dual transcriptions resolve to one form, noise tags become SOUND
cues, fillers lose their slash; lint finds the malformed tags and fixes what is certain."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.corpus import kspon

SLICE = Path(__file__).parent / "fixtures" / "backspeech" / "1uLA7axqouQ.head60.csv"
TABLE = ("--speaker-column", "2", "--text-column", "3")


@pytest.mark.parametrize("written, spoken, kept, dual", [
    ("네. 경제 이야기를 나눠보도록 할 /os2 텐데. /oe 이번주에 특수 고용직 (5차)/(오 차) 긴급", None,
     "네. 경제 이야기를 나눠보도록 할 텐데. 이번주에 특수 고용직 5차 긴급", "written"),
    ("네. 경제 이야기를 나눠보도록 할 /os2 텐데. /oe 이번주에 특수 고용직 (5차)/(오 차) 긴급", None,
     "네. 경제 이야기를 나눠보도록 할 텐데. 이번주에 특수 고용직 오 차 긴급", "spoken"),
    (" /os2 [네.(BC/continuer)] /oe ", None, "|BACKCHANNEL|>(네.)", "written"),
    (" /os2 예. /oe 어/ 전체적으로 n/ 지급하게 되어 /os1 있거든요? /oe ", None,
     "예. 어 전체적으로 |SOUND|>(잡음) 지급하게 되어 있거든요?", "written"),
    ("그런데 거 /os1 같아요 /oe. 이제는", None, "그런데 거 같아요. 이제는", "written"),
    ("[음/(BC/continuer)]", None, "|BACKCHANNEL|>(음)", "written"),
])
def test_a_line_before_and_after(written, spoken, kept, dual):
    assert kspon.plain(written, dual) == kept


def test_lint_finds_and_fixes_the_missing_slash(tmp_path):
    corpus = tmp_path / "bs"
    corpus.mkdir()
    shutil.copy(SLICE, corpus / SLICE.name)
    (tmp_path / "malmungchi.toml").write_text('[build]\nspeaker_column = "2"\ntext_column = "3"\nheader = false\n',
                                               encoding="utf-8")  # its columns named: no D006
    plain = CliRunner().invoke(main, ["corpus", "lint", str(corpus), "--output-format", "text"])
    assert plain.exit_code == 0  # without the style the tags are text
    r = CliRunner().invoke(main, ["corpus", "lint", str(corpus), "--transcript-style", "kspon", "--output-format",
                                  "text"])
    assert r.exit_code == 1
    assert f"{SLICE.name}:33:44: T002 [*] dual transcription (20)(이 십) has no /" in r.output
    fixed = CliRunner().invoke(main, ["corpus", "lint", str(corpus), "--transcript-style", "kspon", "--fix"])
    assert fixed.exit_code == 0, fixed.output
    text = (corpus / SLICE.name).read_bytes().decode()
    assert "(20)/(이 십)" in text and text.count("\r\n") == SLICE.read_bytes().decode().count("\r\n")


def test_build_reads_the_conventions_and_counts_the_cues(tmp_path, qwen3_tokenizer_dir):
    corpus = tmp_path / "bs"
    corpus.mkdir()
    shutil.copy(SLICE, corpus / SLICE.name)
    # the style per file pattern, from the config file
    (tmp_path / "malmungchi.toml").write_text('[build]\ntranscript_patterns = {"*.csv" = "kspon"}\n',
                                               encoding="utf-8")
    r = CliRunner().invoke(main, ["corpus", "build", str(corpus), "--tokenizer", str(qwen3_tokenizer_dir), "--out",
                                  str(tmp_path / "b"), "--mode", "chat", "--max-length", "512", "--allow-errors",
                                  *TABLE], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "b" / "report.json").read_text(encoding="utf-8"))
    assert rep["markers"]["BACKCHANNEL"]["count"] == sum(rep["cues"]["BACKCHANNEL"].values()) > 10
    assert rep["cues"]["BACKCHANNEL"]["네."] > 5
    items = [json.loads(x) for x in (tmp_path / "b" / "eval" / "test.jsonl").read_text().splitlines()]
    texts = json.dumps([m for i in items for m in i["messages"]] + [i["answer"] for i in items], ensure_ascii=False)
    for tag in ("/os", "/oe", "(BC/", ")/(", "어/"):
        assert tag not in texts, tag
    assert "<|backchannel|>" in texts or "BACKCHANNEL" in json.dumps(rep["markers"])
    stats = CliRunner().invoke(main, ["corpus", "stats", str(corpus), "--tokenizer", str(qwen3_tokenizer_dir),
                                      *TABLE])
    assert "cues of BACKCHANNEL: 네." in stats.output
