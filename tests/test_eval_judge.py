"""`eval judge` against a scripted judge behind a real HTTP server on 127.0.0.1 (tests/openai_server.py): the
verdicts, the statistics (Wilson CI, the 2×2 tables and kappa by hand), concurrency, 429s, invalid JSON, a
server error that echoes the API key, structured-output fallback, a server that dies mid-run, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.eval.agreement import agreement
from malmungchi.eval.intervals import wilson
from malmungchi.eval.judge import SCALE_TEXT, JudgeSettings, Rubric, judge, parse_verdict
from malmungchi.eval.records import read_gold
from malmungchi.eval.served import RetryPolicy, ServedClient
from openai_server import OpenAIServer

KEY = "sk-test-DO-NOT-LEAK-4f2a9c"
ITEMS = [  # id, answer, prediction (None: no prediction); what the scripted judge and exact match say
    ("g0", "서울", "서울"),  # both right
    ("g1", "서울", "서울입니다."),  # judge right, exact match wrong on every tier
    ("g2", "빨간색", "파란색"),  # both wrong
    ("g3", "봄", "봄"),
    ("g4", "2", "2"),
    ("g5", "철수", "영희"),
    ("g6", "해님 달님", "해님달님"),  # judge wrong, em_lenient right (spaces do not count there)
    ("g7", ["네", "예"], "예<|im_end|>"),  # the end marker is cut before the judge sees it
    ("bad", "x", "x"),  # the judge never answers valid JSON for it
    ("echo", "y", "y"),  # the server fails with a 500 that echoes the Authorization header
    ("g8", "가", None),
]


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def _scripted_judge(path: str, body: dict):
    """Right when a reference answer appears in the prediction; scripted failures for `bad` and `echo`."""
    prompt = body["messages"][0]["content"]
    reference = _between(prompt, "[정답]\n", "\n\n[모델의 답변]")
    prediction = _between(prompt, "[모델의 답변]\n", "\n\n점수")
    refs = [r.removeprefix("- ") for r in reference.splitlines() if not r.startswith("다음 중")]
    if prediction == "x":
        return 200, _answer("이 답은 맞는 것 같습니다 (JSON이 아님)")
    if prediction == "y":
        return 500, {"error": {"message": f"internal error; your headers were: Bearer {KEY}"}}
    ok = any(r in prediction for r in refs)
    return 200, _answer(json.dumps({"score": int(ok), "reason": "정답과 같음" if ok else "정답과 다름"},
                                   ensure_ascii=False))


def _answer(content: str) -> dict:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    gold, preds = tmp_path / "gold.jsonl", tmp_path / "preds.jsonl"
    gold.write_text("".join(json.dumps({"id": i, "prompt": f"질문 {i}?", "answer": a}, ensure_ascii=False) + "\n"
                            for i, a, _ in ITEMS), encoding="utf-8")
    preds.write_text("".join(json.dumps({"id": i, "prediction": p}, ensure_ascii=False) + "\n"
                             for i, _, p in ITEMS if p is not None), encoding="utf-8")
    return gold, preds


def _cli(url, files, out, *extra, env=None):
    gold, preds = files
    args = ["eval", "judge", "--predictions", str(preds), "--gold", str(gold), "--output", str(out), "--base-url",
            url, "--judge-model", "judge", "--max-retries", "1", "--json", *map(str, extra)]
    return CliRunner(env={"OPENAI_API_KEY": KEY, **(env or {})}).invoke(main, args)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _asked(server: OpenAIServer) -> list[str]:
    return [_between(b["messages"][0]["content"], "[모델의 답변]\n", "\n\n점수") for b in server.completions_bodies()]


def test_judge_end_to_end_statistics_and_resume(files, tmp_path):
    out = tmp_path / "verdicts.jsonl"
    with OpenAIServer(_scripted_judge, models=("judge",), fail_first=2, delay=0.02, overlap=2) as server:
        r = _cli(server.url, files, out, "--concurrency", 4, "--price-input", 1.0, "--price-output", 2.0)
        assert r.exit_code == 0, r.output
        s = json.loads(r.stdout)
        assert 1 < server.max_in_flight <= 4
        assert all(req["headers"].get("Authorization") == f"Bearer {KEY}" for req in server.requests)
        assert all(b["response_format"]["type"] == "json_schema" and b["temperature"] == 0
                   for b in server.completions_bodies())
        assert s["structured_output"] == "json_schema"

        lines = _lines(out)
        assert [x["id"] for x in lines] == [i for i, _, _ in ITEMS]  # one per gold item, gold order
        by_id = {x["id"]: x for x in lines}
        assert [by_id[i]["score"] for i in ("g0", "g1", "g2", "g3", "g4", "g5", "g6", "g7")] == [1, 1, 0, 1, 1, 0, 0, 1]
        assert by_id["bad"]["score"] is None and by_id["bad"]["error"].startswith("invalid verdict")
        assert by_id["echo"]["score"] is None and "HTTP 500" in by_id["echo"]["error"]
        assert "***" in by_id["echo"]["error"]
        assert by_id["g8"]["score"] is None and by_id["g8"]["error"] == "no prediction"
        assert {x["judge_model"] for x in lines} == {"judge"} and len({x["prompt_sha"] for x in lines}) == 1
        assert "예" in _asked(server) and not any("<|im_end|>" in a for a in _asked(server))

        # the statistics, by hand: 5 of 8 judged right; failures are left out, not counted as 0
        assert (s["n_total"], s["n_asked"], s["n_judged"], s["n_failed"], s["n_no_prediction"]) == (11, 10, 8, 2, 1)
        assert s["judge_accuracy"] == 0.625
        # the roots of (5/8 − p)² = z²·p(1 − p)/8, z = 1.95996
        assert s["judge_accuracy_ci95"] == pytest.approx([0.305742, 0.863156], abs=1e-6)
        assert s["judge_accuracy_ci"] == s["judge_accuracy_ci95"]
        em = s["agreement"]["em_normalized"]
        assert (em["judge_yes_em_yes"], em["judge_yes_em_no"], em["judge_no_em_yes"], em["judge_no_em_no"]) == \
            (4, 1, 0, 3)
        assert em["agreement"] == 0.875 and em["kappa"] == 0.75  # p_o 7/8, p_e 1/2
        lenient = s["agreement"]["em_lenient"]
        assert (lenient["judge_yes_em_no"], lenient["judge_no_em_yes"]) == (1, 1)
        assert [d["id"] for d in s["disagreements"]] == ["g1"]
        tries, answered = len(server.completions_bodies()), server.answered  # 8 verdicts + 4 invalid for `bad`
        assert answered == 12 and s["usage"] == {"prompt_tokens": 100 * answered, "completion_tokens": 10 * answered}
        assert s["cost_usd"] == pytest.approx((100 * 1.0 + 10 * 2.0) * answered / 1e6)
        assert "2 item(s) got no valid verdict" in r.stderr

        # a rerun asks only the items without a verdict
        again = _cli(server.url, files, out, "--concurrency", 4)
        assert again.exit_code == 0, again.output
        assert sorted(set(_asked(server)[tries:])) == ["x", "y"]
        assert json.loads(again.stdout)["resumed"] == 8
        assert json.loads(again.stdout)["structured_output"] is None  # no verdict was had this time: none to name

    for text in (out.read_text(encoding="utf-8"), r.stdout, r.stderr, again.stdout, again.stderr):
        assert KEY not in text  # the API key is never written anywhere


def test_server_dies_mid_run_then_the_rerun_asks_only_the_rest(files, tmp_path):
    out = tmp_path / "verdicts.jsonl"
    with OpenAIServer(_scripted_judge, models=("judge",), die_after=4) as dying:
        r = _cli(dying.url, files, out, "--concurrency", 2, "--batch-size", 1, "--max-retries", 0)
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot reach the server" in r.stderr
    assert "rerun the same command to resume" in r.stderr and KEY not in r.output
    done = {x["id"] for x in _lines(out) if x["score"] is not None}
    assert 4 <= len(done) == dying.answered  # every verdict the server gave was kept

    with OpenAIServer(_scripted_judge, models=("judge",)) as server:
        again = _cli(server.url, files, out, "--concurrency", 2)
        assert again.exit_code == 0, again.output
        predictions = {p: i for i, _, p in ITEMS if p is not None}
        asked = {predictions[a if a != "예" else "예<|im_end|>"] for a in _asked(server)}
        assert asked == {i for i, _, p in ITEMS if p is not None} - done
    assert [x["id"] for x in _lines(out)] == [i for i, _, _ in ITEMS]


def test_a_judge_that_rejects_every_request_alike_stops_after_five(files, tmp_path):
    """Every request refused the same way (a parameter the model does not take): the judge stops after five in a
    row with one line naming the first item and the message, instead of failing the whole set. The items it had
    asked are asked again by a rerun without counting toward the stop, and a rerun against a judge that takes
    the request finishes."""
    unsupported = "Unsupported parameter: 'max_tokens' is not supported with this model."

    def refuse(path, body):
        return 400, {"error": {"message": unsupported, "type": "invalid_request_error", "param": "max_tokens"}}

    out = tmp_path / "verdicts.jsonl"
    with OpenAIServer(refuse, models=("judge",)) as server:
        r = _cli(server.url, files, out, "--concurrency", 1, "--batch-size", 1)
        assert r.exit_code == 2, r.output
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
        assert "'g0'" in r.stderr and unsupported in r.stderr and "5 requests in a row" in r.stderr
        assert len(server.requests) == 5

        again = _cli(server.url, files, out, "--concurrency", 1, "--batch-size", 1)
        assert again.exit_code == 2 and "'g4'" in again.stderr  # g0-g3 were asked again, not counted
        assert len(server.requests) == 5 + 4 + 5

    with OpenAIServer(_scripted_judge, models=("judge",)) as server:
        fixed = _cli(server.url, files, out, "--concurrency", 2)
        assert fixed.exit_code == 0, fixed.output
        s = json.loads(fixed.stdout)
        assert (s["n_judged"], s["n_failed"], s["resumed"]) == (8, 2, 0)
    assert [x["id"] for x in _lines(out)] == [i for i, _, _ in ITEMS]


def test_structured_output_falls_back_and_a_ten_point_scale(files, tmp_path):
    """A server without json_schema support answers 400: the judge steps down to json_object for every later
    request. On the 10-point scale, --pass-score decides what counts as right next to exact match."""
    gold, preds = files

    def no_schema(path, body):
        if body.get("response_format", {}).get("type") == "json_schema":
            return 400, {"error": {"message": "response_format json_schema is not supported by this server"}}
        prediction = _between(body["messages"][0]["content"], "[모델의 답변]\n", "\n\n점수")
        return 200, _answer(f'```json\n{{"score": {9 if prediction in ("서울", "봄") else 3}, "reason": "r"}}\n```')

    out = tmp_path / "v.jsonl"
    gold_items = [g for g in read_gold(gold) if g.key in ("g0", "g2", "g3")]
    preds_by_id = {"g0": "서울", "g2": "파란색", "g3": "봄"}
    settings = JudgeSettings("judge", Rubric.load(None, "10"), pass_score=7)
    with OpenAIServer(no_schema, models=("judge",)) as server, \
            ServedClient(server.url, retry=RetryPolicy(max_retries=1, base_delay=0.01), concurrency=1) as client:
        outcome = judge(client, settings, gold_items, preds_by_id, out, concurrency=1)
        formats = [b.get("response_format", {}).get("type") for b in server.completions_bodies()]
    assert formats[0] == "json_schema" and formats[1:] == ["json_object"] * 3
    assert outcome.structured_output == "json_object"
    assert [x["score"] for x in _lines(out)] == [9, 3, 9]
    s = outcome.summary
    assert (s["judge_accuracy"], s["mean_score"], s["agreement"]["em_strict"]["kappa"]) == (0.666667, 7.0, 1.0)
    low, high = s["mean_score_ci"]  # a bootstrap of (9, 3, 9): resample means lie on a grid from 3 to 9
    assert 3 <= low < 7.0 < high <= 9 and outcome.summary["mean_score_ci"] == s["mean_score_ci"]


def test_a_sample_is_judged_and_recorded(files, tmp_path):
    from malmungchi.eval.sample import draw

    gold, _ = files
    expected = draw(read_gold(gold), 5, 3)
    out = tmp_path / "v.jsonl"
    with OpenAIServer(_scripted_judge, models=("judge",)) as server:
        r = _cli(server.url, files, out, "--sample", 5, "--seed", 3, "--concurrency", 1)
        assert r.exit_code == 0, r.output
        asked = _asked(server)
    s = json.loads(r.stdout)
    assert s["n_total"] == 5 and s["sample"]["ids"] == list(expected.keys) and s["sample"]["seed"] == 3
    lines = _lines(out)
    assert [str(x["id"]) for x in lines] == list(expected.keys)
    assert {x["sample"] for x in lines} == {expected.ids_sha}
    predicted = {i: p for i, _, p in ITEMS}
    wanted = {predicted[k].removesuffix("<|im_end|>") for k in expected.keys if predicted[k] is not None}
    assert set(asked) == wanted  # only the sampled items were asked (`echo` twice: its 500 is retried)


def test_verdict_validation_and_statistics():
    assert parse_verdict('{"score": 1, "reason": "맞음"}', "binary") == (1, "맞음")
    assert parse_verdict('답: {"score": 10.0, "reason": ""}', "10") == (10, "")
    for bad, scale in (('{"score": 2, "reason": "r"}', "binary"), ('{"score": true, "reason": "r"}', "binary"),
                       ('{"score": 0, "reason": "r"}', "10"), ('{"score": 1}', "binary"), ("맞습니다", "binary"),
                       ('{"score": 1, "reason": "r"', "binary")):
        with pytest.raises(ValueError):
            parse_verdict(bad, scale)
    # a reasoning model's braces before its verdict; braces inside the verdict's reason; a nested object
    thinking = '<think>점수는 {"score": 0} 일까? {아니면}</think>\n{"score": 1, "reason": "정답과 같음 {확인}"} 끝'
    assert parse_verdict(thinking, "binary") == (1, "정답과 같음 {확인}")
    assert parse_verdict('{"score": 7, "reason": "r", "detail": {"a": 1}}', "10") == (7, "r")
    assert parse_verdict('{"a": 1} 그리고 {"score": 0, "reason": "r"} 그리고 {"b": 2}', "binary") == (0, "r")
    with pytest.raises(ValueError, match="no JSON object"):
        parse_verdict('<think>{"score": 1, "reason": "r"}</think> 모르겠습니다', "binary")  # reasoning is not the verdict
    assert wilson(0, 0) is None
    low, high = wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.277533, abs=1e-6)  # not the degenerate [0, 0] of p ± z·se
    assert agreement([True, True], [True, True]).kappa is None  # one answer throughout: undefined
    assert agreement([True, False, True, False], [False, True, False, True]).kappa == -1.0


def test_rubric_fill_does_not_paste_into_what_it_pasted():
    """A question or prediction that holds a literal placeholder stays as written: the gold answer is never
    pasted into the question (an answer leak), nor the question into the prediction."""
    rubric = Rubric("Q: {question}\nR: {reference}\nP: {prediction}\n{scale}", "binary")
    filled = rubric.fill("{reference}가 뭐예요?", "서울", "{question} {scale}")
    assert filled.count("서울") == 1 and filled.startswith("Q: {reference}가 뭐예요?\nR: 서울\n")
    assert "P: {question} {scale}\n" in filled and filled.endswith(SCALE_TEXT["binary"])


def test_rubric_file_must_place_the_answers(files, tmp_path):
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("정답: {reference}\n채점하세요.", encoding="utf-8")
    r = _cli("http://127.0.0.1:9/v1", files, tmp_path / "v.jsonl", "--rubric", rubric)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no {prediction} placeholder" in r.stderr
