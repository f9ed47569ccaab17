"""The resumable results log: truncated tails, stale fingerprints, duplicates, whole-batch appends."""

from __future__ import annotations

import json

from malmungchi.eval.results import Appender, load_for_resume


def _line(i, fp="fp1", sha="s"):
    return json.dumps({"id": f"q{i}", "prediction": f"답{i}", "fingerprint": fp, "input_sha": sha},
                      ensure_ascii=False) + "\n"


WANTED = {f"q{i}": "s" for i in range(5)}


def test_missing_file_is_a_fresh_start(tmp_path):
    state = load_for_resume(tmp_path / "r.jsonl", "fp1", WANTED)
    assert state.done == {} and not state.truncated_tail


def test_truncated_tail_is_cut_off_before_appending(tmp_path):
    path = tmp_path / "r.jsonl"
    whole = _line(0) + _line(1)
    path.write_bytes(whole.encode() + _line(2).encode()[:17])  # killed in the middle of a write
    state = load_for_resume(path, "fp1", WANTED)
    assert set(state.done) == {"q0", "q1"} and state.truncated_tail
    assert path.read_bytes() == whole.encode()
    with Appender(path) as log:
        log.write_batch([json.loads(_line(2)), json.loads(_line(3))])
    ids = [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()]
    assert ids == ["q0", "q1", "q2", "q3"]


def test_tail_cut_inside_a_hangul_character(tmp_path):
    path = tmp_path / "r.jsonl"
    data = (_line(0) + _line(1)).encode()
    path.write_bytes(data[:-4])  # mid-way through the UTF-8 bytes of 답 and the closing of line q1
    state = load_for_resume(path, "fp1", WANTED)
    assert set(state.done) == {"q0"}
    assert path.read_bytes() == _line(0).encode()


def test_only_a_partial_first_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(_line(0).encode()[:10])
    state = load_for_resume(path, "fp1", WANTED)
    assert state.done == {} and path.read_bytes() == b""


def test_stale_and_duplicate_lines_are_dropped_atomically(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(_line(0) + _line(1, fp="old") + _line(2, sha="changed prompt") + _line(0) + _line(9) + _line(3),
                    encoding="utf-8")
    state = load_for_resume(path, "fp1", WANTED)
    assert set(state.done) == {"q0", "q3"}
    assert state.stale == 3  # other fingerprint, changed prompt, id no longer in the gold file
    assert state.duplicates == 1
    ids = [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()]
    assert ids == ["q0", "q3"]
    assert not list(tmp_path.glob(".malmungchi-*"))  # no temporary file left behind


def test_a_foreign_file_is_refused(tmp_path):
    import pytest

    from malmungchi.eval.records import EvalInputError

    path = tmp_path / "r.jsonl"
    path.write_text("this is not jsonl\n", encoding="utf-8")
    with pytest.raises(EvalInputError, match=r"r.jsonl:1: not a results line"):
        load_for_resume(path, "fp1", WANTED)
    assert path.read_text(encoding="utf-8") == "this is not jsonl\n"  # untouched
