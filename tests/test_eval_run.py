"""`eval run` end to end on CPU: a tiny random Llama with the real Qwen3 tokenizer, batching, stop reasons,
fingerprints, resume (including a real kill of a running process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from malmungchi.cli import main
from malmungchi.eval.generate import (
    STOP_EOS,
    STOP_LENGTH,
    STOP_STRING,
    GenerationSettings,
    encode,
    ensure_pad_token,
    generate_all,
    generate_batch,
    stop_token_ids,
)
from malmungchi.eval.load import load
from malmungchi.eval.records import EvalInputError, read_gold
from malmungchi.eval.run import prepare_prompts, run_eval

QA = [
    ("질문: 한국의 수도는 어디인가요?\n답:", "서울"),
    ("사과는 무슨 색인가요?", "빨간색"),
    ("안녕하세요", "반갑습니다"),
    ("학교에 가요?", ["네", "예"]),
    ("바다는", "파랗다"),
    ("옛날 옛적에 작은 마을에 한 소년이 살았습니다. 소년의 이름은 무엇이었을까요?", "철수"),
    ("가", "나"),
    ("1 더하기 1은?", "2"),
    ("겨울 다음은?", "봄"),
    ("할머니가 들려주신 이야기의 제목은?", "해님 달님"),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, qwen3_tokenizer_dir) -> Path:
    from transformers import AutoTokenizer

    from malmungchi.train.tiny import make_tiny_model

    tok = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", tok, seed=0)


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return load(tiny_model, device="cpu")


def _gold(path: Path, items=QA, chat: int = 2) -> Path:
    rows = [{"id": f"q{i}", "prompt": p, "answer": a} for i, (p, a) in enumerate(items)]
    for j in range(chat):
        rows.append({"id": f"c{j}", "prompt": "이름이 뭐예요?", "answer": "말뭉치",
                     "messages": [{"role": "system", "content": "짧게 답하세요."},
                                  {"role": "user", "content": f"이름이 뭐예요? ({j})"}]})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _run(model, gold, out, *extra):
    args = ["eval", "run", str(model), "--data", str(gold), "--output", str(out), "--device", "cpu", "--json",
            "--max-new-tokens", "6", "--batch-size", "4", *map(str, extra)]
    return CliRunner().invoke(main, args)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_untrained_model_end_to_end_and_rerun(tiny_model, loaded, tmp_path):
    gold = _gold(tmp_path / "gold.jsonl")
    out = tmp_path / "r.jsonl"
    r = _run(tiny_model, gold, out)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["n_total"] == 12 and s["n_scored"] == 12 and s["n_missing"] == 0
    assert s["em_normalized"] <= 0.1  # random weights: nothing right, bar a freak coincidence
    assert s["generated"] == 12 and s["resumed"] == 0
    assert sum(s["stop_reasons"].values()) == 12
    assert "stopped at --max-new-tokens" in r.stderr  # an untrained model never ends its answers
    lines = _lines(out)
    assert [x["id"] for x in lines] == [f"q{i}" for i in range(10)] + ["c0", "c1"]  # gold order, once each
    assert len({x["fingerprint"] for x in lines}) == 1 and lines[0]["fingerprint"] == s["fingerprint"]
    for x in lines:
        assert isinstance(x["prediction"], str)
        assert x["stop_reason"] in (STOP_EOS, STOP_LENGTH)
        assert {"em_strict", "em_normalized", "em_lenient", "char_f1"} <= set(x)

    # the same run through the library (no reload): same fingerprint, nothing to do, file untouched
    before = out.read_bytes()
    settings = GenerationSettings(max_new_tokens=6)
    again = run_eval(loaded, read_gold(gold), out, settings, batch_size=4)
    assert (again.generated, again.resumed, again.fingerprint) == (0, 12, s["fingerprint"])
    assert out.read_bytes() == before

    # the gold answers change (same prompts): nothing is regenerated, everything is rescored.
    # Using the model's own outputs as the answers must then score 1 on every tier.
    rows = [json.loads(x) for x in gold.read_text(encoding="utf-8").splitlines()]
    predictions = {x["id"]: x["prediction"] for x in lines}
    for row in rows:
        row["answer"] = predictions[row["id"]]
    gold.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows), encoding="utf-8")
    third = run_eval(loaded, read_gold(gold), out, settings, batch_size=4)
    assert third.generated == 0
    assert [third.summary.means[m] for m in ("em_strict", "em_normalized", "em_lenient", "char_f1")] == [1, 1, 1, 1]
    assert all(x["em_strict"] == 1 for x in _lines(out))  # the file was rescored too

    # other generation settings → another fingerprint → every item is redone, the file still holds each id once
    fourth = run_eval(loaded, read_gold(gold), out, GenerationSettings(max_new_tokens=3), batch_size=4)
    assert fourth.generated == 12 and fourth.stale == 12 and fourth.fingerprint != s["fingerprint"]
    assert [x["id"] for x in _lines(out)] == [x["id"] for x in lines]
    assert all(x["new_tokens"] <= 3 and x["fingerprint"] == fourth.fingerprint for x in _lines(out))


def test_limit_then_the_rest(loaded, tmp_path):
    gold = read_gold(_gold(tmp_path / "gold.jsonl", chat=0))
    out = tmp_path / "r.jsonl"
    settings = GenerationSettings(max_new_tokens=4)
    first = run_eval(loaded, gold, out, settings, batch_size=4, limit=3)
    assert first.summary.n_total == 3 and [x["id"] for x in _lines(out)] == ["q0", "q1", "q2"]
    rest = run_eval(loaded, gold, out, settings, batch_size=4)
    assert (rest.summary.n_total, rest.resumed, rest.generated) == (10, 3, 7)
    assert [x["id"] for x in _lines(out)] == [f"q{i}" for i in range(10)]


def test_batching_and_left_padding_match_batch_size_one(loaded):
    model, tok = loaded.model, loaded.tokenizer
    ensure_pad_token(tok)
    prompts = [p for p, _ in QA[:6]]
    ids = encode(tok, prompts, [False] * len(prompts))
    assert len({len(x) for x in ids}) > 3  # really different lengths, so real padding
    settings = GenerationSettings(max_new_tokens=8)
    batched = generate_all(model, tok, ids, settings, batch_size=4)
    single = generate_all(model, tok, ids, settings, batch_size=1)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.stop_reason for g in batched] == [g.stop_reason for g in single]
    assert tok.padding_side == "left"


def test_tokenizer_without_pad_token_pads_with_eos(loaded):
    import copy

    model, tok = loaded.model, copy.deepcopy(loaded.tokenizer)
    ensure_pad_token(loaded.tokenizer)
    tok.pad_token = None
    ensure_pad_token(tok)
    assert tok.pad_token_id == tok.eos_token_id is not None
    prompts = [p for p, _ in QA[:4]]
    settings = GenerationSettings(max_new_tokens=6)
    ids = encode(tok, prompts, [False] * 4)
    with_eos_pad = generate_all(model, tok, ids, settings, batch_size=4)
    usual = generate_all(model, loaded.tokenizer, ids, settings, batch_size=4)
    assert [g.text for g in with_eos_pad] == [g.text for g in usual]


def test_sampling_is_seeded_and_only_then_fingerprinted(loaded):
    model, tok = loaded.model, loaded.tokenizer
    ensure_pad_token(tok)
    ids = encode(tok, [p for p, _ in QA[:3]], [False] * 3)

    def sample(seed):
        settings = GenerationSettings(max_new_tokens=5, temperature=1.0, top_p=0.9, seed=seed)
        return [g.text for g in generate_all(model, tok, ids, settings, batch_size=3)]

    assert sample(0) == sample(0)
    assert sample(0) != sample(1)
    greedy = GenerationSettings(seed=1).identity()
    assert greedy == GenerationSettings(seed=2).identity() and "seed" not in greedy
    assert GenerationSettings(temperature=0.7, seed=1).identity() != GenerationSettings(temperature=0.7, seed=2).identity()


def test_stop_string_and_eos_reasons(loaded):
    model, tok = loaded.model, loaded.tokenizer
    ensure_pad_token(tok)
    ids = encode(tok, [QA[0][0], QA[5][0]], [False, False])
    stops = stop_token_ids(tok, model)
    free = generate_batch(model, tok, ids, GenerationSettings(max_new_tokens=8), stops)
    assert all(g.stop_reason == STOP_LENGTH and g.new_tokens == 8 for g in free)

    # a stop string taken from the middle of what the model says anyway
    text = free[0].text
    stop = text[len(text) // 2: len(text) // 2 + 2]
    assert stop.strip()
    cut = generate_batch(model, tok, ids[:1], GenerationSettings(max_new_tokens=8, stop_strings=(stop,)), stops)[0]
    assert cut.stop_reason == STOP_STRING
    assert cut.text == text[: text.find(stop)]

    # an end token: pretend a token the model emits (not among its earlier ones) is an end-of-turn id
    candidates = []
    for prompt, _ in QA:
        p_ids = encode(tok, [prompt], [False])[0]
        seen = _new_ids(model, p_ids, 8)
        candidates += [(p_ids, seen, k) for k in range(1, 8) if seen[k] not in seen[:k]]
    assert candidates, "the random model repeats one token for every prompt; pick other prompts"
    p_ids, seen, k = candidates[0]
    ended = generate_batch(model, tok, [p_ids], GenerationSettings(max_new_tokens=8), stops + [seen[k]])[0]
    assert ended.stop_reason == STOP_EOS and ended.new_tokens == k + 1
    assert ended.text == tok.decode(seen[:k])


def _new_ids(model, prompt_ids, n):
    import torch

    raw = model.generate(input_ids=torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids),
                         dtype=torch.long), max_new_tokens=n, do_sample=False, eos_token_id=None)
    return raw[0, len(prompt_ids):].tolist()


def test_chat_records_go_through_the_template(loaded, tmp_path):
    gold = read_gold(_gold(tmp_path / "g.jsonl", items=QA[:1], chat=1))
    prepared = prepare_prompts(loaded.tokenizer, gold, "g.jsonl")
    assert prepared.texts[0] == QA[0][0] and prepared.templated == [False, True]
    assert prepared.texts[1].startswith("<|im_start|>system\n짧게 답하세요.<|im_end|>")
    assert prepared.texts[1].endswith("<|im_start|>assistant\n")


def test_chat_record_ending_with_its_answer(loaded, tmp_path):
    """The build stage writes chat items as the whole exchange, the answer last: that turn is the reference
    and is left out of the prompt; a last assistant turn that is not the answer is refused."""
    gold = tmp_path / "g.jsonl"
    convo = [{"role": "user", "content": "수도?"}]
    rows = [{"id": 1, "answer": "서울", "messages": convo + [{"role": "assistant", "content": "서울"}]},
            {"id": 2, "answer": "서울", "messages": convo}]
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    prepared = prepare_prompts(loaded.tokenizer, read_gold(gold), gold)
    assert prepared.texts[0] == prepared.texts[1] == "<|im_start|>user\n수도?<|im_end|>\n<|im_start|>assistant\n"

    rows[0]["messages"][-1]["content"] = "부산"
    gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(EvalInputError, match=r"g.jsonl:1: .*ends with an assistant turn that is not the answer"):
        prepare_prompts(loaded.tokenizer, read_gold(gold), gold)


def test_not_a_model_folder(tmp_path):
    gold = _gold(tmp_path / "g.jsonl", items=QA[:1], chat=0)
    (tmp_path / "empty").mkdir()
    for target, message in ((tmp_path / "empty", "neither a run folder"), (tmp_path / "nope", "no such folder")):
        r = _run(target, gold, tmp_path / "r.jsonl")
        assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
        assert message in r.stderr


def test_run_folder_without_the_train_loader(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_manifest.json").write_text("{}", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "malmungchi.train.loader", None)  # as if the train stage were not installed
    with pytest.raises(EvalInputError, match="no train-stage loader"):
        load(run)


def test_kill_mid_run_then_resume(tiny_model, loaded, tmp_path):
    """A real `python -m malmungchi eval run` is SIGKILLed once its first batches are on disk; the rerun
    completes the file with every id exactly once and the same predictions as an uninterrupted run."""
    items = [(f"{p} ({i})", a) for i in range(3) for p, a in QA[:8]]  # 24 items
    gold = _gold(tmp_path / "gold.jsonl", items=items, chat=0)
    out = tmp_path / "r.jsonl"
    args = [sys.executable, "-m", "malmungchi", "eval", "run", str(tiny_model), "--data", str(gold), "--output",
            str(out), "--device", "cpu", "--max-new-tokens", "16", "--batch-size", "1", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    killed_at = out.read_bytes().count(b"\n")
    assert 2 <= killed_at < 24

    settings = GenerationSettings(max_new_tokens=16)
    resumed = run_eval(loaded, read_gold(gold), out, settings, batch_size=8)
    assert resumed.resumed == killed_at and resumed.resumed + resumed.generated == 24
    ids = [x["id"] for x in _lines(out)]
    assert ids == [f"q{i}" for i in range(24)]  # every id exactly once, in gold order

    fresh = run_eval(loaded, read_gold(gold), tmp_path / "fresh.jsonl", settings, batch_size=8)
    assert fresh.generated == 24
    assert [x["prediction"] for x in _lines(out)] == [x["prediction"] for x in _lines(tmp_path / "fresh.jsonl")]


def test_text_mode_build_stops_each_answer_at_the_line_break(tmp_path, qwen3_tokenizer_dir):
    """In a text-mode build an answer is one turn: generation must end where the next speaker's line starts."""
    from transformers import AutoTokenizer

    from malmungchi.cli import main
    from malmungchi.train.tiny import make_tiny_model

    tok = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    model = make_tiny_model(tmp_path / "m", tok, hidden_size=32, intermediate_size=64)
    build = tmp_path / "build"
    (build / "eval").mkdir(parents=True)
    (build / "manifest.json").write_text(json.dumps({"mode": "text"}), encoding="utf-8")
    (build / "eval" / "test.jsonl").write_text(
        json.dumps({"id": "a", "prompt": "민지: 안녕?\n준호: ", "answer": "응, 안녕."}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(main, ["eval", "run", str(model), "--data", str(build), "--output", str(out),
                                       "--max-new-tokens", "40", "--show", "0"])
    assert result.exit_code == 0, result.output
    assert "stops at a line break" in result.output
    row = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert "\n" not in row["prediction"]


def test_a_sample_is_generated_alone_and_enters_the_fingerprint(tiny_model, tmp_path):
    from malmungchi.eval.sample import draw

    gold = _gold(tmp_path / "gold.jsonl")
    out = tmp_path / "r.jsonl"
    r = _run(tiny_model, gold, out, "--sample", 3, "--seed", 1)
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    expected = draw(read_gold(gold), 3, 1)
    assert (s["n_total"], s["generated"]) == (3, 3) and s["sample"]["ids"] == list(expected.keys)
    assert [x["id"] for x in _lines(out)] == list(expected.keys)
    assert {x["fingerprint"] for x in _lines(out)} == {s["fingerprint"]}
    again = json.loads(_run(tiny_model, gold, out, "--sample", 3, "--seed", 1).stdout)
    assert (again["generated"], again["resumed"], again["fingerprint"]) == (0, 3, s["fingerprint"])
    other = _run(tiny_model, gold, out, "--sample", 3, "--seed", 2)
    assert json.loads(other.stdout)["fingerprint"] != s["fingerprint"]  # another sample: another fingerprint
    assert "fingerprint changed" in other.stderr
    refused = _run(tiny_model, gold, out, "--sample", 3, "--limit", 5)
    assert refused.exit_code == 2 and "--sample and --limit: give one" in refused.stderr


def test_a_run_evaluated_on_a_build_of_another_mode_is_warned(tmp_path):
    """A chat run scored on a text build's prompts (a wrong --data) gave 0% without a word."""
    import json as _json

    from malmungchi.eval.run import build_mismatch

    def folder(name, file, data):
        d = tmp_path / name
        d.mkdir()
        (d / file).write_text(_json.dumps(data), encoding="utf-8")
        return d

    run = folder("run", "run_manifest.json", {"build": {"path": "/b/chat", "content_hash": "a" * 64, "mode": "chat"}})
    same = folder("same", "manifest.json", {"content_hash": "a" * 64, "mode": "chat"})
    other = folder("other", "manifest.json", {"content_hash": "b" * 64, "mode": "chat"})
    text = folder("text", "manifest.json", {"content_hash": "c" * 64, "mode": "text"})
    assert build_mismatch(run, same) is None
    assert build_mismatch(run, other).startswith("note: ") and "bbbbbbbbbbbb" in build_mismatch(run, other)
    warning = build_mismatch(run, text)
    assert warning.startswith("warning: ") and "chat-mode build aaaaaaaaaaaa" in warning and "text-mode" in warning
    assert build_mismatch(tmp_path / "gold.jsonl", text) is None and build_mismatch(None, text) is None
    assert build_mismatch(run, tmp_path / "gold.jsonl") is None  # a JSONL of gold records: nothing to compare
    (text / "eval").mkdir()
    (text / "eval" / "test.jsonl").write_text("", encoding="utf-8")
    assert build_mismatch(run, text / "eval" / "test.jsonl").startswith("warning: ")  # the build's own items file
    odd = folder("odd", "run_manifest.json", [])  # not an object: no note, and no traceback
    assert build_mismatch(odd, text) is None
    modeless = folder("modeless", "run_manifest.json", {"build": {"content_hash": "d" * 64}})
    assert "None" not in build_mismatch(modeless, text)
