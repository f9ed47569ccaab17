"""`eval run --backend openai` against a real HTTP server on 127.0.0.1 (tests/openai_server.py) serving a tiny
random Llama through transformers: greedy answers equal the local backend's, concurrency is bounded, 429s and
garbled answers are retried, a server that dies mid-run leaves a resumable file, and errors are one line."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.eval.generate import GenerationSettings
from malmungchi.eval.load import load
from malmungchi.eval.records import read_gold
from malmungchi.eval.run import run_eval, run_plan
from malmungchi.eval.served import RetryPolicy, ServedClient
from malmungchi.eval.served_run import served_plan
from openai_server import OpenAIServer, TinyModelResponder

QA = [("질문: 한국의 수도는 어디인가요?\n답:", "서울"), ("사과는 무슨 색인가요?", "빨간색"), ("안녕하세요", "반갑습니다"),
      ("바다는", "파랗다"), ("옛날 옛적에 작은 마을에 한 소년이 살았습니다.", "철수"), ("1 더하기 1은?", "2")]
N = len(QA) + 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, qwen3_tokenizer_dir):
    from transformers import AutoTokenizer

    from malmungchi.train.tiny import make_tiny_model

    tok = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    return load(make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tok, seed=0), device="cpu")


@pytest.fixture(scope="module")
def responder(loaded):
    return TinyModelResponder(loaded.model, loaded.tokenizer)


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> Path:
    rows = [{"id": f"q{i}", "prompt": p, "answer": a} for i, (p, a) in enumerate(QA)]
    for j in range(2):  # chat items: the answered assistant turn is last, as the build writes them
        rows.append({"id": f"c{j}", "answer": "말뭉치",
                     "messages": [{"role": "system", "content": "짧게 답하세요."},
                                  {"role": "user", "content": f"이름이 뭐예요? ({j})"},
                                  {"role": "assistant", "content": "말뭉치"}]})
    path = tmp_path_factory.mktemp("gold") / "gold.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def local_lines(loaded, gold, tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("local") / "r.jsonl"
    run_eval(loaded, read_gold(gold), out, GenerationSettings(max_new_tokens=6), batch_size=4)
    return _lines(out)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _cli(url, gold, out, *extra):
    args = ["eval", "run", "--backend", "openai", "--base-url", url, "--served-model", "tiny", "--data", str(gold),
            "--output", str(out), "--max-new-tokens", "6", "--json", *map(str, extra)]
    return CliRunner().invoke(main, args)


def _prompt_ids(server: OpenAIServer, gold: Path) -> list[str]:
    """The gold ids the server was asked for, from the prompts it received."""
    by_prompt = {}
    for item in read_gold(gold):
        by_prompt[item.prompt if item.messages is None else json.dumps(item.messages[:-1], ensure_ascii=False)] = \
            item.key
    return [by_prompt[b["prompt"] if "prompt" in b else json.dumps(b["messages"], ensure_ascii=False)]
            for b in server.completions_bodies()]


def test_greedy_served_answers_equal_the_local_backend(responder, gold, local_lines, tmp_path):
    out = tmp_path / "served.jsonl"
    with OpenAIServer(responder, delay=0.05, overlap=2) as server:
        r = _cli(server.url, gold, out, "--concurrency", 3, "--batch-size", 2)
        assert r.exit_code == 0, r.output
        s = json.loads(r.stdout)
        assert (s["n_total"], s["generated"], s["resumed"]) == (N, N, 0)
        served = _lines(out)
        assert [x["id"] for x in served] == [x["id"] for x in local_lines]
        assert [x["prediction"] for x in served] == [x["prediction"] for x in local_lines]
        assert [x["stop_reason"] for x in served] == [x["stop_reason"] for x in local_lines]
        assert [x["new_tokens"] for x in served] == [x["new_tokens"] for x in local_lines]
        assert 1 < server.max_in_flight <= 3  # really parallel, and never more than --concurrency

        bodies = server.completions_bodies()
        paths = sorted(r["path"] for r in server.requests)
        assert paths == ["/chat/completions"] * 2 + ["/completions"] * len(QA)
        for b in bodies:
            assert (b["max_tokens"], b["temperature"], b["skip_special_tokens"]) == (6, 0.0, False)
            assert "seed" not in b and "top_p" not in b  # greedy: nothing that could change the answer
            if "messages" in b:  # the reference answer is never sent
                assert [m["role"] for m in b["messages"]] == ["system", "user"]

        # the same command again: everything resumed, the server is not asked anything
        again = _cli(server.url, gold, out, "--concurrency", 3)
        assert again.exit_code == 0, again.output
        assert (json.loads(again.stdout)["resumed"], len(server.completions_bodies())) == (N, N)
        assert "resuming" in again.stderr

        # another sampling setting is another fingerprint: every item is asked again, the file holds each id once
        sampled = _cli(server.url, gold, out, "--temperature", 0.7, "--seed", 3)
        assert sampled.exit_code == 0, sampled.output
        assert json.loads(sampled.stdout)["generated"] == N
        assert all(b["seed"] == 3 and b["temperature"] == 0.7 for b in server.completions_bodies()[N:])
        assert sorted(x["id"] for x in _lines(out)) == sorted(x["id"] for x in local_lines)


def test_429_and_a_garbled_answer_are_retried(responder, gold, local_lines, tmp_path):
    calls = {"n": 0}

    def garble_the_fourth(path, body):
        calls["n"] += 1
        return (200, "{not json") if calls["n"] == 4 else responder(path, body)

    out = tmp_path / "r.jsonl"
    with OpenAIServer(garble_the_fourth, fail_first=3) as server, \
            ServedClient(server.url, retry=RetryPolicy(max_retries=4, base_delay=0.01), concurrency=2) as client:
        plan = served_plan(client, "tiny", read_gold(gold), out, GenerationSettings(max_new_tokens=6),
                           concurrency=2, batch_size=3)
        outcome = run_plan(plan, read_gold(gold), out)
        assert (outcome.generated, outcome.summary.n_total) == (N, N)
        assert len(server.requests) == N + 3 + 1  # every item once, plus the three 429s and the garbled one
    assert [x["prediction"] for x in _lines(out)] == [x["prediction"] for x in local_lines]


def test_server_dies_mid_run_then_the_rerun_asks_only_the_rest(responder, gold, local_lines, tmp_path):
    out = tmp_path / "r.jsonl"
    with OpenAIServer(responder, die_after=3) as dying:
        r = _cli(dying.url, gold, out, "--concurrency", 2, "--batch-size", 1, "--max-retries", 1)
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert "cannot reach the server" in r.stderr and "rerun the same command to resume" in r.stderr
    written = [x["id"] for x in _lines(out)]
    assert 3 <= len(written) == dying.answered < N  # every answer the server gave was kept
    assert len(set(written)) == len(written)

    with OpenAIServer(responder) as server:
        again = _cli(server.url, gold, out, "--concurrency", 2)  # another port: the same model, so it resumes
        assert again.exit_code == 0, again.output
        s = json.loads(again.stdout)
        assert (s["resumed"], s["generated"]) == (len(written), N - len(written))
        assert sorted(_prompt_ids(server, gold)) == sorted(x["id"] for x in local_lines if x["id"] not in written)
    assert [x["id"] for x in _lines(out)] == [x["id"] for x in local_lines]  # each id once, in gold order
    assert [x["prediction"] for x in _lines(out)] == [x["prediction"] for x in local_lines]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["unreachable", "unknown model", "model folder too", "device", "no url"])
def test_one_line_errors(responder, gold, tmp_path, case):
    out = tmp_path / "r.jsonl"
    with OpenAIServer(responder) as server:
        if case == "unreachable":
            r = _cli(f"http://127.0.0.1:{_free_port()}/v1", gold, out, "--max-retries", 0)
            expected = "cannot reach the server"
        elif case == "unknown model":
            r = CliRunner().invoke(main, ["eval", "run", "--backend", "openai", "--base-url", server.url,
                                          "--served-model", "nope", "--data", str(gold), "--output", str(out)])
            expected = "serves no model named 'nope' (it serves: tiny)"
        elif case == "model folder too":
            r = CliRunner().invoke(main, ["eval", "run", str(tmp_path), "--backend", "openai", "--base-url",
                                          server.url, "--served-model", "tiny", "--data", str(gold), "--output",
                                          str(out)])
            expected = "leave out RUN_DIR_OR_MODEL"
        elif case == "device":
            r = _cli(server.url, gold, out, "--device", "cuda")
            expected = "with --backend openai the server decides"
        else:
            r = CliRunner().invoke(main, ["eval", "run", "--backend", "openai", "--data", str(gold), "--output",
                                          str(out)])
            expected = "--backend openai needs --base-url"
        assert server.requests == []
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr, r.stderr
    assert not out.exists()


# -- the client: redirects, Retry-After, what a spent retry budget says ---------------------------------------

def _chat_answer(path, body):
    return 200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "네"},
                              "finish_reason": "stop"}], "usage": {"completion_tokens": 1}}


_CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "안녕"}], "max_tokens": 4}


def test_a_redirect_stops_with_the_url_to_pass(gold, tmp_path):
    """httpx does not follow redirects: a 3xx (http → https, a proxy's new path) is one line naming the
    Location to pass as --base-url, not a garbled answer retried."""
    out = tmp_path / "r.jsonl"
    with OpenAIServer(_chat_answer, redirect_to="https://llm.example.org/v1") as server:
        r = _cli(server.url, gold, out, "--max-retries", 3)
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert "https://llm.example.org/v1/models" in r.stderr and "--base-url https://llm.example.org/v1" in r.stderr


def test_retry_after_as_an_http_date_is_waited_for():
    import time
    from email.utils import formatdate

    not_before = int(time.time()) + 2  # whole seconds, as the date form has them: a 1-2 s wait
    with OpenAIServer(_chat_answer, fail_first=1, retry_after=lambda: formatdate(not_before, usegmt=True)) as server, \
            ServedClient(server.url, retry=RetryPolicy(max_retries=1, base_delay=0.01)) as client:
        assert client.post("/chat/completions", _CHAT)["choices"]
        assert len(server.requests) == 2 and server.requests[1]["at"] >= not_before


def test_retry_after_has_its_own_cap_and_jitter_and_leaves_the_global_random_alone():
    import random

    policy = RetryPolicy()
    waits = [policy.delay(0, 60.0) for _ in range(40)]
    assert all(60.0 <= w <= 75.0 for w in waits) and len(set(waits)) > 1  # honoured, spread up to +25%
    assert all(120.0 <= policy.delay(0, 3600.0) <= 150.0 for _ in range(10))  # its cap, not the backoff's 30 s
    assert all(policy.delay(10) <= 30.0 * 1.25 for _ in range(10))
    random.seed(7)
    expected = random.random()
    random.seed(7)
    policy.delay(0, 1.0), policy.delay(2)
    assert random.random() == expected  # jitter draws from its own generator: a seeded run's results stay put


def test_spent_retries_keep_the_status_and_an_abort_does_not_claim_them():
    import threading

    from malmungchi.eval.served import RequestFailed

    with OpenAIServer(_chat_answer, fail_first=1000, fail_status=503) as server, \
            ServedClient(server.url, retry=RetryPolicy(max_retries=2, base_delay=0.01)) as client:
        with pytest.raises(RequestFailed) as spent:
            client.post("/chat/completions", _CHAT)
    assert spent.value.status == 503 and "HTTP 503" in spent.value.message and "after 3 tries" in spent.value.message

    failed: list[RequestFailed] = []

    def ask(client):
        try:
            client.post("/chat/completions", _CHAT)
        except RequestFailed as err:
            failed.append(err)

    with OpenAIServer(_chat_answer, fail_first=1000, fail_status=503, retry_after=lambda: "100") as server, \
            ServedClient(server.url, retry=RetryPolicy(max_retries=3)) as client:
        worker = threading.Thread(target=ask, args=(client,))
        worker.start()
        while not server.requests:  # the first try was answered: the worker now waits the 100 s
            worker.join(0.01)
        client.abort(False)
        worker.join()
    assert len(server.requests) == 1 and failed[0].status == 503
    assert "tries" not in failed[0].message and "stopping" in failed[0].message


# -- items the server rejects ------------------------------------------------------------------------------

TOO_LONG = "This model's maximum context length is 32 tokens. However, you requested 40 tokens."


def test_an_item_the_server_rejects_is_an_error_result_and_the_run_goes_on(responder, gold, local_lines, tmp_path):
    """A 400 for one item (its prompt is over the server's max_model_len) is that item's result: no prediction,
    stop_reason "error" and the server's message, scored wrong as `eval score` scores a missing prediction. The
    run finishes; a rerun asks that item again and nothing else."""
    def too_long_for_q1(path, body):
        if body.get("prompt") == QA[1][0]:
            return 400, {"object": "error", "message": TOO_LONG, "type": "BadRequestError", "code": 400}
        return responder(path, body)

    out = tmp_path / "r.jsonl"
    with OpenAIServer(too_long_for_q1) as server:
        r = _cli(server.url, gold, out, "--concurrency", 2)
        assert r.exit_code == 0, r.output
        s = json.loads(r.stdout)
        assert (s["generated"], s["n_errors"], s["stop_reasons"]["error"]) == (N, 1, 1)
        assert "server rejected or failed 1 item" in r.stderr and "q1" in r.stderr and TOO_LONG in r.stderr
        by_id = {x["id"]: x for x in _lines(out)}
        q1 = by_id["q1"]
        assert (q1["prediction"], q1["stop_reason"], q1["em_normalized"], q1["char_f1"]) == (None, "error", 0, 0.0)
        assert TOO_LONG in q1["error"] and "HTTP 400" in q1["error"]
        assert [by_id[x["id"]]["prediction"] for x in local_lines if x["id"] != "q1"] == \
            [x["prediction"] for x in local_lines if x["id"] != "q1"]
        assert all(by_id[i]["error"] is None for i in by_id if i != "q1")

        scored = CliRunner().invoke(main, ["eval", "score", "-p", str(out), "-g", str(gold), "--json"])
        assert scored.exit_code == 0, scored.output
        assert json.loads(scored.stdout)["em_normalized"] == s["em_normalized"]  # the same verdict as eval score's

        asked = len(server.requests)
        again = _cli(server.url, gold, out)
        assert again.exit_code == 0, again.output
        assert (json.loads(again.stdout)["resumed"], json.loads(again.stdout)["generated"]) == (N - 1, 1)
        assert _prompt_ids(server, gold)[asked:] == ["q1"]
    assert [x["id"] for x in _lines(out)] == [x["id"] for x in local_lines]


def test_a_server_that_rejects_every_request_alike_stops_after_five(responder, gold, local_lines, tmp_path):
    """A parameter the server does not take fails every item the same way: five in a row stop the command with
    one line naming the first item and the message; the rerun against a server that takes it finishes. A refused
    key still stops at once."""
    unsupported = "Unsupported parameter: 'skip_special_tokens'"
    out = tmp_path / "r.jsonl"
    with OpenAIServer(lambda path, body: (400, {"error": {"message": unsupported}})) as server:
        r = _cli(server.url, gold, out, "--concurrency", 1, "--batch-size", 1)
        assert r.exit_code == 2, r.output
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
        assert "q0" in r.stderr and unsupported in r.stderr and "5 requests in a row" in r.stderr
        assert len(server.requests) == 5

    with OpenAIServer(responder) as server:
        again = _cli(server.url, gold, out, "--concurrency", 2)
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["generated"] == N and json.loads(again.stdout)["n_errors"] == 0
    assert [x["prediction"] for x in _lines(out)] == [x["prediction"] for x in local_lines]

    with OpenAIServer(lambda path, body: (401, {"error": {"message": "Invalid API key"}})) as server:
        refused = _cli(server.url, gold, tmp_path / "other.jsonl")
        assert refused.exit_code == 2 and "refused the API key" in refused.stderr
        assert len(server.requests) <= 16  # the first answers stop it: not one try per item after that


def test_an_item_the_server_fails_on_every_try_is_an_error_result_and_the_run_goes_on(responder, gold, local_lines,
                                                                                     tmp_path):
    """A 500 for one item on every try (a prompt that crashes the server's tokenizer, say) is that item's result
    once its retries are spent, as a rejection is: the other items are answered and a rerun asks it again."""
    def crash_on_q1(path, body):
        if body.get("prompt") == QA[1][0]:
            return 500, {"error": {"message": "tokenizer worker crashed"}}
        return responder(path, body)

    out = tmp_path / "r.jsonl"
    with OpenAIServer(crash_on_q1) as server:
        r = _cli(server.url, gold, out, "--concurrency", 2, "--max-retries", 1)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["n_errors"] == 1 and "q1" in r.stderr
        by_id = {x["id"]: x for x in _lines(out)}
        assert by_id["q1"]["prediction"] is None and "HTTP 500" in by_id["q1"]["error"]
        assert "after 2 tries" in by_id["q1"]["error"]
        assert all(by_id[i]["error"] is None for i in by_id if i != "q1")
        assert _prompt_ids(server, gold).count("q1") == 2  # asked once more, no more

        again = _cli(server.url, gold, out, "--max-retries", 0)  # it fails again: still that item's result
        assert again.exit_code == 0, again.output
        assert (json.loads(again.stdout)["generated"], json.loads(again.stdout)["n_errors"]) == (1, 1)


def test_an_answer_without_choices_is_that_items_error(responder, gold, tmp_path):
    def no_choices_for_q2(path, body):
        if body.get("prompt") == QA[2][0]:
            return 200, {"object": "error", "message": "engine hiccup"}
        return responder(path, body)

    out = tmp_path / "r.jsonl"
    with OpenAIServer(no_choices_for_q2) as server:
        r = _cli(server.url, gold, out, "--max-retries", 0)
        assert r.exit_code == 0, r.output
        by_id = {x["id"]: x for x in _lines(out)}
        assert by_id["q2"]["prediction"] is None and "no choices" in by_id["q2"]["error"]
        assert sum(x["error"] is not None for x in by_id.values()) == 1


def test_a_server_failing_every_request_stops_after_five_whatever_it_says(gold, tmp_path):
    """A server in trouble words its 5xx many ways: five items in a row failed on its side stop the command (one
    line, what to do), instead of writing an error result for every item."""
    count = iter(range(10_000))

    def broken(path, body):
        return 503, {"error": {"message": f"engine overloaded (request {next(count)})"}}

    out = tmp_path / "r.jsonl"
    with OpenAIServer(broken) as server:
        r = _cli(server.url, gold, out, "--concurrency", 1, "--batch-size", 1, "--max-retries", 0)
        assert r.exit_code == 2, r.output
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
        assert "failed 5 requests in a row" in r.stderr and "q0" in r.stderr and "server's log" in r.stderr
        assert len(server.requests) == 5

        # fewer items than five: none answered is no run either
        few = tmp_path / "few.jsonl"
        few.write_text("".join(line for line in gold.read_text(encoding="utf-8").splitlines(keepends=True)[:3]),
                       encoding="utf-8")
        short = _cli(server.url, few, tmp_path / "r3.jsonl", "--max-retries", 0)
        assert short.exit_code == 2 and "answered none" in short.stderr and "Traceback" not in short.output
