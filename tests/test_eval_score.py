"""`malmungchi eval score` through click's CliRunner: exact numbers on a handmade file, one-line input errors."""

from __future__ import annotations

import json
import unicodedata

import pytest
from click.testing import CliRunner

from malmungchi.cli import main

GOLD = [
    {"id": "g1", "prompt": "수도는?", "answer": "서울"},
    {"id": "g2", "prompt": "언어는?", "answer": "한국어"},
    {"id": "g3", "prompt": "어디?", "answer": "서울입니다"},
    {"id": "g4", "prompt": "어디를?", "answer": "학교를"},
    {"id": "g5", "prompt": "맞아요?", "answer": ["예", "네"]},
    {"id": 6, "prompt": "항구는?", "answer": "부산"},
]
PREDICTIONS = [
    {"id": "g1", "prediction": "서울"},
    {"id": "g2", "prediction": unicodedata.normalize("NFD", "한국어")},
    {"id": "g3", "prediction": "서울입니다."},
    {"id": "g4", "prediction": "학교에"},
    {"id": "g5", "prediction": "네<|im_end|>더 말하자면"},
    {"id": "zz", "prediction": "gold에 없는 id"},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path):
    return _write(tmp_path / "gold.jsonl", GOLD), _write(tmp_path / "pred.jsonl", PREDICTIONS)


def _score(*args):
    return CliRunner().invoke(main, ["eval", "score", *map(str, args)])


def test_exact_numbers(files, tmp_path):
    gold, pred = files
    out = tmp_path / "r.jsonl"
    result = _score("-p", pred, "-g", gold, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["n_total"], summary["n_scored"], summary["n_missing"], summary["n_extra"]) == (6, 5, 1, 1)
    assert summary["em_strict"] == pytest.approx(2 / 6, abs=1e-6)  # g1, g5 (cut at <|im_end|>)
    assert summary["em_normalized"] == pytest.approx(3 / 6, abs=1e-6)  # + g2 (NFD)
    assert summary["em_lenient"] == pytest.approx(4 / 6, abs=1e-6)  # + g3 (final period)
    assert summary["char_f1"] == pytest.approx((4 + 2 / 3) / 6, abs=1e-6)  # g4: 학교 of 3 chars each side
    assert summary["fixed_by"]["nfc"] == 1
    assert summary["fixed_by"]["punctuation"] == 1
    assert summary["fixed_by"]["end_marker"] == 1
    assert sum(summary["fixed_by"].values()) == 3
    assert summary["normalizer_version"] >= 1
    assert "not in" in result.stderr  # the extra id is reported

    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == ["g1", "g2", "g3", "g4", "g5", 6]  # one per gold item, gold order
    by_id = {str(r["id"]): r for r in lines}
    assert (by_id["g2"]["em_strict"], by_id["g2"]["em_normalized"], by_id["g2"]["em_lenient"]) == (0, 1, 1)
    assert by_id["g4"]["char_f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert by_id["6"]["prediction"] is None and by_id["6"]["em_lenient"] == 0
    for r in lines:
        assert set(r) >= {"id", "prediction", "em_strict", "em_normalized", "em_lenient", "char_f1"}


def test_rich_report_shows_tiers_and_worst(files):
    gold, pred = files
    result = _score("-p", pred, "-g", gold)
    assert result.exit_code == 0, result.output
    assert "em_normalized" in result.stdout and "50.0%" in result.stdout
    assert "worst mismatches" in result.stdout and "학교" in result.stdout
    assert "(missing)" in result.stdout


def test_tokenizer_end_markers(tmp_path, qwen3_tokenizer_dir):
    gold = _write(tmp_path / "g.jsonl", [{"id": 1, "answer": "답"}])
    pred = _write(tmp_path / "p.jsonl", [{"id": 1, "prediction": "답<|box_end|>"}])
    assert json.loads(_score("-p", pred, "-g", gold, "--json").stdout)["em_strict"] == 0
    r = _score("-p", pred, "-g", gold, "--json", "--end-marker", "<|box_end|>")
    assert json.loads(r.stdout)["em_strict"] == 1
    # the Qwen3 tokenizer's EOS is <|im_end|>, already always cut at; loading it must still work
    r = _score("-p", pred, "-g", gold, "--json", "--tokenizer", qwen3_tokenizer_dir)
    assert r.exit_code == 0, r.output


def test_drop_markers_flag(tmp_path):
    gold = _write(tmp_path / "g.jsonl", [{"id": 1, "answer": "<|sound|>하하"}])
    pred = _write(tmp_path / "p.jsonl", [{"id": 1, "prediction": "하하"}])
    assert json.loads(_score("-p", pred, "-g", gold, "--json").stdout)["em_strict"] == 0
    assert json.loads(_score("-p", pred, "-g", gold, "--json", "--drop-markers").stdout)["em_strict"] == 1


def test_build_dir_as_gold(tmp_path):
    (tmp_path / "build" / "eval").mkdir(parents=True)
    _write(tmp_path / "build" / "eval" / "test.jsonl", [{"id": 1, "prompt": "p", "answer": "a"}])
    pred = _write(tmp_path / "p.jsonl", [{"id": "1", "prediction": "a"}])  # "1" and 1 are the same id
    result = _score("-p", pred, "-g", tmp_path / "build", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["em_strict"] == 1


def _bad(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("which, text, expected", [
    ("pred", '{"id": 1, "prediction": "a"}\n{"id": 2, "prediction": \n', "p.jsonl:2: invalid JSON"),
    ("pred", '{"id": 1, "prediction": "a"}\n\n{"prediction": "b"}\n', 'p.jsonl:3: no "id" field'),
    ("pred", '{"id": 1}\n', 'p.jsonl:1: no "prediction" field'),
    ("pred", '{"id": 1, "prediction": 5}\n', 'p.jsonl:1: "prediction" must be a string'),
    ("pred", '{"id": 1, "prediction": "a"}\n{"id": 1, "prediction": "b"}\n',
     "p.jsonl:2: duplicate id '1' (first on line 1)"),
    ("pred", '[1, 2]\n', "p.jsonl:1: expected a JSON object"),
    ("gold", '{"id": 1, "prompt": "p"}\n', 'g.jsonl:1: no "answer" field'),
    ("gold", '{"id": 1, "answer": []}\n', 'g.jsonl:1: "answer" must be a string or a non-empty list'),
    ("gold", '{"id": null, "answer": "a"}\n', 'g.jsonl:1: "id" must be a string or an integer'),
    ("gold", '', "g.jsonl: no gold records"),
    ("pred", '\n', "p.jsonl: no predictions (an empty file?"),  # else 0% with an interval, as if it were a result
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, which, text, expected):
    good_gold = _bad(tmp_path, "good_g.jsonl", '{"id": 1, "answer": "a"}\n')
    good_pred = _bad(tmp_path, "good_p.jsonl", '{"id": 1, "prediction": "a"}\n')
    bad = _bad(tmp_path, "p.jsonl" if which == "pred" else "g.jsonl", text)
    args = ("-p", bad, "-g", good_gold) if which == "pred" else ("-p", good_pred, "-g", bad)
    result = _score(*args)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # no traceback
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]


def test_missing_file_and_undecodable(tmp_path):
    gold = _bad(tmp_path, "g.jsonl", '{"id": 1, "answer": "a"}\n')
    result = _score("-p", tmp_path / "nope.jsonl", "-g", gold)
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {tmp_path / 'nope.jsonl'}: no such file"
    cp949 = tmp_path / "p.jsonl"
    cp949.write_bytes('{"id": 1, "prediction": "서울"}\n'.encode("cp949"))
    result = _score("-p", cp949, "-g", gold)
    assert result.exit_code == 2 and "p.jsonl:1: not UTF-8" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_steps_table_appears_only_when_a_step_changed_a_verdict(tmp_path):
    from malmungchi.cli import main

    gold = tmp_path / "g.jsonl"
    gold.write_text('{"id": "1", "prompt": "p", "answer": "가"}\n', encoding="utf-8")
    same = tmp_path / "same.jsonl"
    same.write_text('{"id": "1", "prediction": "가"}\n', encoding="utf-8")
    spaced = tmp_path / "spaced.jsonl"
    spaced.write_text('{"id": "1", "prediction": "가\\u200b"}\n', encoding="utf-8")
    plain = CliRunner().invoke(main, ["eval", "score", "--predictions", str(same), "--gold", str(gold)])
    assert plain.exit_code == 0 and "no step turned an item" in plain.output
    assert "what each normalization step fixed" not in plain.output
    fixed = CliRunner().invoke(main, ["eval", "score", "--predictions", str(spaced), "--gold", str(gold)])
    assert fixed.exit_code == 0 and "what each normalization step fixed" in fixed.output


def test_mismatch_highlight_shows_spacing_differences_and_keeps_long_spans_readable():
    """A 띄어쓰기 difference is the one a reader must see (␣ where gold has a space the prediction lacks); a wholly
    different answer keeps its spaces, so the table wraps it between words instead of inside them."""
    from malmungchi.eval.report import highlight_pair

    g, p = highlight_pair("할 수 있다", "할수 있다")
    assert g.plain == "할␣수 있다" and p.plain == "할수 있다"
    assert any(span.style and "green" in str(span.style) for span in g.spans)
    g, p = highlight_pair("오늘 밤의 정거장은 여기까지입니다", "그럼 혼자 하지 떼루 하듸")
    assert "␣" not in g.plain + p.plain and g.plain == "오늘 밤의 정거장은 여기까지입니다"


def test_predictions_for_another_build_are_refused_not_scored_zero(tmp_path):
    gold = _bad(tmp_path, "g.jsonl", '{"id": 1, "answer": "a"}\n{"id": 2, "answer": "b"}\n')
    other = _bad(tmp_path, "p.jsonl", '{"id": "x:t0", "prediction": "a"}\n')
    r = _score("-p", other, "-g", gold)
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [
        f"error: {other}: none of its 1 ids is in {gold} (its first: 'x:t0'): predictions for another build or "
        "split?"]
    partly = _bad(tmp_path, "q.jsonl", '{"id": 1, "prediction": "a"}\n{"id": "x", "prediction": "b"}\n')
    assert _score("-p", partly, "-g", gold).exit_code == 0  # some ids in gold: scored, the rest warned about
