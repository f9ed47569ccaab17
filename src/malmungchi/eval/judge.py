"""`eval judge`: an LLM judge over an OpenAI-compatible API, item by item, resumable.

For every gold item with a prediction the judge model gets the rubric filled with the question (the prompt, or
the conversation without its answered turn), the reference answer(s) and the prediction (cut at its end-of-turn
marker, reasoning removed: what `em_strict` compares). It must answer one JSON object `{"score", "reason"}`:

- the scale is `binary` (score 0 or 1, the default) or `10` (an integer 1–10; `pass_score` and above counts as
  right when the verdict is compared with exact match);
- structured output is asked for where the server has it (`response_format` json_schema, then json_object when
  the server refuses the schema, then nothing), and every answer is validated here whatever the server claims:
  an invalid verdict is asked again, up to the retry budget.

Results are one line per gold item (`id`, `score`, `reason`, `error`, `judge_model`, `prompt_sha`, `usage`,
plus the `fingerprint`/`input_sha` resume keys), appended and fsynced per batch. A rerun keeps every line with a
verdict under the same judge, rubric and item, and asks again only what has none: `score` is `null` when no valid
verdict was had, with the last error, and such an item is left out of the accuracy, never counted as 0. Requests
the server rejects all alike (`served.RejectionStreak`: five in a row with one message, e.g. a parameter the model
does not take) stop the command; the items asked again by a rerun do not count toward that.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from malmungchi.eval.agreement import agreement
from malmungchi.eval.generate import prompt_messages
from malmungchi.eval.intervals import bootstrap_mean, rounded, wilson
from malmungchi.eval.normalize import TIERS, Normalizer, cut_at_end_marker, strip_reasoning
from malmungchi.eval.records import EvalInputError, GoldItem
from malmungchi.eval.results import Appender, load_for_resume, rewrite_in_order
from malmungchi.eval.sample import Sample
from malmungchi.eval.served import RejectionStreak, RequestFailed, ServedClient, ServedError, first_choice
from malmungchi.eval.served import parallel_batches

SCALES = ("binary", "10")
DEFAULT_PASS_SCORE = 7  # on the 10-point scale: this and above is "right" next to exact match
JUDGE_RESULTS = "`eval judge` results"
PLACEHOLDERS = ("{question}", "{reference}", "{prediction}")
_PLACEHOLDER = re.compile(r"\{(question|reference|prediction|scale)\}")

DEFAULT_RUBRIC = """당신은 한국어 답변을 채점하는 엄격하고 공정한 평가자입니다.
질문(또는 대화)과 정답, 그리고 모델의 답변이 주어집니다. 모델의 답변이 정답과 같은 내용인지 판단하세요.
띄어쓰기, 문장부호, 맞춤법의 작은 차이, 존댓말과 반말처럼 뜻을 바꾸지 않는 차이는 무시합니다.
사실이나 핵심 내용이 다르거나, 빠졌거나, 정답에 없는 내용을 덧붙여 뜻이 달라졌으면 틀린 것으로 봅니다.

[질문]
{question}

[정답]
{reference}

[모델의 답변]
{prediction}

{scale}
다른 말은 쓰지 말고 JSON 객체 하나로만 답하세요: {"score": 점수, "reason": "한두 문장으로 쓴 판단 이유"}
"""

SCALE_TEXT = {
    "binary": "점수: 모델의 답변이 정답과 같은 내용이면 1, 아니면 0.",
    "10": "점수: 1(전혀 맞지 않음)부터 10(정답과 완전히 같은 내용)까지의 정수.",
}
SCORES = {"binary": (0, 1), "10": tuple(range(1, 11))}
FORMATS = ("json_schema", "json_object", None)  # tried in this order; a server that refuses one gets the next


def verdict_schema(scale: str) -> dict:
    return {"type": "object", "properties": {"score": {"type": "integer", "enum": list(SCORES[scale])},
                                             "reason": {"type": "string"}},
            "required": ["score", "reason"], "additionalProperties": False}


@dataclass(frozen=True)
class Rubric:
    template: str
    scale: str = "binary"

    @classmethod
    def load(cls, path: str | Path | None, scale: str) -> Rubric:
        """The default Korean rubric, or a file's: it must hold `{reference}` and `{prediction}` (and may hold
        `{question}`, `{scale}`); without `{scale}` the scale's instruction is appended."""
        if path is None:
            return cls(DEFAULT_RUBRIC, scale)
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise EvalInputError(f"--rubric {p}: cannot read it as UTF-8 text ({getattr(err, 'strerror', err)})")
        missing = [x for x in PLACEHOLDERS[1:] if x not in text]
        if missing:
            raise EvalInputError(f"--rubric {p}: no {' or '.join(missing)} placeholder; the rubric must say where "
                                 "the reference answer and the prediction go")
        if "{scale}" not in text:
            text = text.rstrip("\n") + "\n\n{scale}\n"
        return cls(text, scale)

    @property
    def sha(self) -> str:
        """The prompt's hash: the template, the scale and the schema the answer must follow."""
        blob = json.dumps([self.template, self.scale, SCALE_TEXT[self.scale], verdict_schema(self.scale)],
                          ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def fill(self, question: str, reference: str, prediction: str) -> str:
        """The template with its placeholders filled in one pass: a `{reference}` written in a question is left
        as written, never replaced by the gold answer."""
        values = {"question": question, "reference": reference, "prediction": prediction,
                  "scale": SCALE_TEXT[self.scale]}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)


def question_text(item: GoldItem) -> str:
    if item.messages is not None:
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt_messages(item.messages, item.answers))
    return item.prompt or ""


def reference_text(item: GoldItem) -> str:
    if len(item.answers) == 1:
        return item.answers[0]
    return "다음 중 하나면 정답:\n" + "\n".join(f"- {a}" for a in item.answers)


def shown_prediction(prediction: str, normalizer: Normalizer) -> str:
    """The prediction as the judge sees it: reasoning removed, cut at the first end marker, trimmed."""
    text, _ = strip_reasoning(prediction, normalizer.end_markers)
    return cut_at_end_marker(text, normalizer.end_markers).strip()


def parse_verdict(content: str, scale: str) -> tuple[int, str]:
    """The (score, reason) in a judge's answer; ValueError saying what is wrong. Reasoning (`<think>…</think>`)
    is removed first; then the verdict is the last JSON object with a "score" key, so a code fence, words or other
    objects around it (some servers without structured output add them) do not matter."""
    text = strip_reasoning(content or "")[0].strip()
    if "{" not in text:
        raise ValueError(f"no JSON object in the answer: {text[:80]!r}")
    obj = _last_verdict_object(text)
    if obj is None:
        raise ValueError(f"no valid JSON object with a \"score\" in the answer: {text[:80]!r}")
    score = obj.get("score")
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if isinstance(score, bool) or not isinstance(score, int) or score not in SCORES[scale]:
        allowed = "0 or 1" if scale == "binary" else "an integer 1–10"
        raise ValueError(f"\"score\" must be {allowed}, got {json.dumps(score, ensure_ascii=False)}")
    reason = obj.get("reason")
    if not isinstance(reason, str):
        raise ValueError("\"reason\" must be a string")
    return score, reason


def _last_verdict_object(text: str) -> dict | None:
    """The last JSON object holding "score": a decode tried at each `{` from the end (an object nested in the
    verdict decodes first and is passed over for lacking the key). Quadratic in the braces at worst, on an answer
    of at most --max-tokens."""
    decoder = json.JSONDecoder()
    at = len(text)
    while (at := text.rfind("{", 0, at)) >= 0:
        try:
            obj, _ = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            return obj
    return None


class _Format:
    """The structured-output mode in use, shared by the workers: stepped down once when the server refuses it;
    `answered` is the mode of the last answer that held a valid verdict (None until one did)."""

    def __init__(self) -> None:
        self.index = 0
        self.answered: str | None = None
        self.lock = threading.Lock()

    @property
    def mode(self) -> str | None:
        return FORMATS[self.index]

    def step_down(self, failed: str | None) -> bool:
        with self.lock:
            if FORMATS[self.index] == failed and self.index < len(FORMATS) - 1:
                self.index += 1
            return FORMATS[self.index] != failed


def response_format(mode: str | None, scale: str) -> dict | None:
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True,
                                                      "schema": verdict_schema(scale)}}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def _refuses_format(err: RequestFailed) -> bool:
    low = err.message.lower()
    return err.status in (400, 422) and any(w in low for w in ("response_format", "json_schema", "json_object",
                                                                "structured", "guided"))


@dataclass
class JudgeSettings:
    judge_model: str
    rubric: Rubric
    max_tokens: int = 512
    pass_score: int = DEFAULT_PASS_SCORE
    max_invalid: int = 3  # asks again after an invalid verdict

    @property
    def fingerprint(self) -> str:
        blob = json.dumps([self.judge_model, self.rubric.sha, self.max_tokens], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


@dataclass
class _Judge:
    client: ServedClient
    settings: JudgeSettings
    format: _Format = field(default_factory=_Format)
    streak: RejectionStreak = field(default_factory=RejectionStreak)

    def ask(self, prompt: str, item_id: str, asked_before: bool = False) -> dict:
        """One item's verdict line (without the ids): never raises for an item-level failure (the line then has
        `score: null` and the error); ServedError (no server, refused key, failures in a row alike) stops the
        run."""
        s = self.settings
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        error = None
        invalid = 0
        while True:
            mode = self.format.mode
            body = {"model": s.judge_model, "messages": [{"role": "user", "content": prompt}], "temperature": 0,
                    "max_tokens": s.max_tokens}
            fmt = response_format(mode, s.rubric.scale)
            if fmt is not None:
                body["response_format"] = fmt
            self.streak.check()
            try:
                answer = self.client.post("/chat/completions", body)
            except RequestFailed as err:
                if err.ends_run:
                    raise  # the server is gone: stop (the run says to rerun) rather than fail every item
                if mode is not None and _refuses_format(err) and self.format.step_down(mode):
                    continue  # the server has no such structured output: ask again with the next mode
                self.streak.failed(item_id, err, counted=not asked_before)
                return _verdict(None, None, err.message, usage)
            self.streak.answered()
            for k in usage:
                value = (answer.get("usage") or {}).get(k)
                usage[k] += value if isinstance(value, int) else 0
            try:
                score, reason = parse_verdict(_content(answer), s.rubric.scale)
                self.format.answered = mode
                return _verdict(score, reason, None, usage)
            except ValueError as err:
                error = f"invalid verdict: {err}"
                invalid += 1
                if invalid > s.max_invalid:
                    return _verdict(None, None, error, usage)


def _content(answer: dict) -> str:
    message = (first_choice(answer) or {}).get("message") or {}
    return message.get("content") or "" if isinstance(message, dict) else ""


def _verdict(score, reason, error, usage) -> dict:
    return {"score": score, "reason": reason, "error": error, "usage": dict(usage)}


@dataclass
class JudgeOutcome:
    lines: list[dict]  # one per gold item, gold order
    summary: dict
    asked: int
    resumed: int
    structured_output: str | None  # the mode of the last valid verdict this run; None when none was had


def judge(client: ServedClient, settings: JudgeSettings, gold: Sequence[GoldItem],
          predictions: dict[str, str | None], output: Path, *, normalizer: Normalizer | None = None,
          concurrency: int = 40, batch_size: int = 16, show: int = 10,
          prices: tuple[float | None, float | None] = (None, None), sample: Sample | None = None, on_start=None,
          on_progress=None) -> JudgeOutcome:
    """Ask the judge for every gold item that has a prediction and no verdict in `output` yet; rewrite `output`
    in gold order; return the lines and the summary. With `--sample`, `gold` is the sampled items and `sample`
    the draw: each line records its hash (`sample`) and the summary the draw and its ids. A verdict depends on
    the item alone, so the resume fingerprint leaves the sample out: a verdict already paid for is kept."""
    normalizer = normalizer or Normalizer()
    client.model_info(settings.judge_model)  # one line now if the server does not serve it
    prompts, shas = {}, {}
    for item in gold:
        pred = predictions.get(item.key)
        if pred is not None:
            prompts[item.key] = settings.rubric.fill(question_text(item), reference_text(item),
                                                     shown_prediction(pred, normalizer))
            shas[item.key] = hashlib.sha256(prompts[item.key].encode("utf-8")).hexdigest()[:16]
    fingerprint = settings.fingerprint
    state = load_for_resume(output, fingerprint, shas, field_name="score", kind=JUDGE_RESULTS,
                            reusable=lambda obj: obj.get("score") is not None)
    todo = [item for item in gold if item.key in prompts and item.key not in state.done]
    if on_start is not None:
        on_start(len(prompts), len(prompts) - len(todo))
    lines = dict(state.done)
    worker = _Judge(client, settings)
    log = Appender(output)

    def write(batch: list[tuple[int, dict]]) -> None:
        out = [_line(todo[j], v, settings, fingerprint, shas[todo[j].key], sample) for j, v in batch]
        log.write_batch(out)
        for obj in out:
            lines[str(obj["id"])] = obj
        if on_progress is not None:
            on_progress(len(out))

    try:
        parallel_batches(todo, lambda item: worker.ask(prompts[item.key], str(item.id), item.key in state.redo),
                         concurrency=concurrency, batch_size=batch_size, on_batch=write, abort=client.abort)
    except RequestFailed as err:
        raise ServedError(f"{err.message}; the finished verdicts are in {output}: rerun the same command to "
                          "resume") from None
    finally:
        log.close()
    worker.streak.finish(f"the verdicts are in {output}")
    final = [_with_sample(lines[item.key], sample) if item.key in lines
             else _line(item, _verdict(None, None, "no prediction", {}), settings, fingerprint, None, sample)
             for item in gold]
    rewrite_in_order(output, final)
    summary = summarize(gold, predictions, final, settings, normalizer, show=show, prices=prices)
    used = worker.format.answered
    summary.update(asked=len(todo), resumed=len(prompts) - len(todo), structured_output=used, output=str(output))
    if sample is not None:
        summary["sample"] = sample.as_dict()
    return JudgeOutcome(final, summary, len(todo), len(prompts) - len(todo), used)


def _line(item: GoldItem, verdict: dict, settings: JudgeSettings, fingerprint: str, sha: str | None,
          sample: Sample | None = None) -> dict:
    return _with_sample({"id": item.id, "score": verdict["score"], "reason": verdict["reason"],
                         "error": verdict["error"], "judge_model": settings.judge_model,
                         "prompt_sha": settings.rubric.sha, "usage": verdict["usage"], "fingerprint": fingerprint,
                         "input_sha": sha}, sample)


def _with_sample(line: dict, sample: Sample | None) -> dict:
    """The line with the hash of the sample it was judged in (`sample`), or without one when there is none."""
    out = {k: v for k, v in line.items() if k != "sample"}
    if sample is not None:
        out["sample"] = sample.ids_sha
    return out


def judged_right(score: int, settings: JudgeSettings) -> bool:
    return score == 1 if settings.rubric.scale == "binary" else score >= settings.pass_score


def _judge_value(score: int, scale: str) -> float:
    return float(score) if scale == "binary" else (score - 1) / 9


def summarize(gold: Sequence[GoldItem], predictions: dict[str, str | None], lines: Sequence[dict],
              settings: JudgeSettings, normalizer: Normalizer, *, show: int = 10,
              prices: tuple[float | None, float | None] = (None, None)) -> dict:
    """Judge accuracy (Wilson 95% CI) over the items with a verdict; its agreement with each exact-match tier
    (2×2 table, Cohen's kappa); the `show` items where judge and `em_normalized` disagree most; tokens and cost."""
    scale = settings.rubric.scale
    judged = []  # (item, line, ItemScore)
    for item, line in zip(gold, lines):
        if line.get("score") is not None:
            judged.append((item, line, normalizer.score(predictions.get(item.key), item.answers)))
    right = [judged_right(line["score"], settings) for _, line, _ in judged]
    n, k = len(judged), sum(right)
    ci = wilson(k, n)
    asked = sum(1 for item in gold if predictions.get(item.key) is not None)
    usage = {key: sum((line.get("usage") or {}).get(key, 0) for line in lines)
             for key in ("prompt_tokens", "completion_tokens")}
    price_in, price_out = prices
    cost = None
    if price_in is not None and price_out is not None:
        cost = round(usage["prompt_tokens"] / 1e6 * price_in + usage["completion_tokens"] / 1e6 * price_out, 6)
    disagreements = []
    for (item, line, sc), ok in zip(judged, right):
        if ok != bool(sc.em_normalized):
            strength = abs(_judge_value(line["score"], scale) - sc.char_f1)
            disagreements.append({"id": item.id, "score": line["score"], "em_normalized": sc.em_normalized,
                                  "char_f1": round(sc.char_f1, 4), "reason": line.get("reason"),
                                  "prediction": predictions.get(item.key), "answer": item.answers[0],
                                  "strength": round(strength, 4)})
    disagreements.sort(key=lambda d: -d["strength"])
    out = {
        "judge_model": settings.judge_model, "prompt_sha": settings.rubric.sha, "scale": scale,
        "n_total": len(gold), "n_asked": asked, "n_judged": n, "n_failed": asked - n,
        "n_no_prediction": len(gold) - asked,
        "judge_accuracy": round(k / n, 6) if n else None,
        "judge_accuracy_ci": rounded(ci),
        "judge_accuracy_ci95": rounded(ci),  # the name before every headline got its "<metric>_ci"
        "agreement": {tier: agreement(right, [bool(getattr(sc, tier)) for _, _, sc in judged]).as_dict()
                      for tier in TIERS},
        "disagreements": disagreements[:show],
        "n_disagreements": len(disagreements),
        "usage": usage, "cost_usd": cost,
    }
    if scale == "10":
        out["pass_score"] = settings.pass_score
        out["mean_score"] = round(sum(line["score"] for _, line, _ in judged) / n, 6) if n else None
        out["mean_score_ci"] = rounded(bootstrap_mean([line["score"] for _, line, _ in judged]))
    errors = [line["error"] for line in lines if line.get("score") is None and line.get("error")
              and line["error"] != "no prediction"]
    out["last_error"] = errors[-1] if errors else None
    return out
