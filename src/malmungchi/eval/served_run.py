"""`eval run --backend openai`: generation through an OpenAI-compatible server, into the same results file.

Chat items (with `messages`) go to `/chat/completions`, the answered assistant turn left out as for the local
backend; text items go to `/completions` with their prompt as is (the server adds the BOS a local tokenizer call
would). The same settings apply: `max_new_tokens` is `max_tokens`, temperature 0 is greedy, `top_p` and `seed`
are sent only when sampling, `--stop` strings are `stop`; the model's own end-of-turn token is the server's to
stop at. `skip_special_tokens: false` (a vLLM and SGLang request field) keeps marker tokens that a tokenizer
registered as special in the answer text.

Requests run `concurrency` at a time (`served.parallel_batches`); results are appended and fsynced `batch_size`
at a time by `run.run_plan`, the loop the local backend uses: resume, exactly once per id, final order.

An item the server rejects (a 4xx that retrying cannot fix, e.g. a prompt over its `max_model_len`) or fails on
every try (5xx, timeout, an answer without choices) is that item's result: `STOP_ERROR` with the message; the run
goes on. What means the server cannot be used (no server, a refused key, an unknown model, a redirect, a 429 after
the retries, nothing answered at all) stops the command, and so do `REJECTION_STREAK` failures in a row alike
(`served.RejectionStreak`: a parameter the server does not take, a server in trouble).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from malmungchi.eval import fingerprint as fp
from malmungchi.eval.generate import STOP_EOS, STOP_ERROR, STOP_LENGTH, STOP_STRING, Generation, GenerationSettings
from malmungchi.eval.generate import input_sha
from malmungchi.eval.generate import prompt_messages
from malmungchi.eval.normalize import Normalizer
from malmungchi.eval.records import EvalInputError, GoldItem
from malmungchi.eval.run import RunPlan, Write
from malmungchi.eval.served import RejectionStreak, RequestFailed, ServedClient, ServedError, first_choice
from malmungchi.eval.served import parallel_batches

CHAT_PATH, COMPLETIONS_PATH = "/chat/completions", "/completions"


@dataclass(frozen=True)
class Request:
    path: str
    body: dict


def fixed_fields(keep_special_tokens: bool) -> dict:
    """Request fields that are the same for every item (part of the fingerprint)."""
    return {"skip_special_tokens": False} if keep_special_tokens else {}


def item_request(item: GoldItem, model: str, settings: GenerationSettings, fixed: dict) -> Request:
    """The request for one gold item; ValueError for an item with nothing to prompt with."""
    body: dict = {"model": model, "max_tokens": settings.max_new_tokens, "temperature": settings.temperature}
    if settings.sampling:
        body["top_p"] = settings.top_p
        body["seed"] = settings.seed
    if settings.stop_strings:
        body["stop"] = list(settings.stop_strings)
    body.update(fixed)
    if item.messages is not None:
        return Request(CHAT_PATH, {**body, "messages": prompt_messages(item.messages, item.answers)})
    if item.prompt is None:
        raise ValueError("neither \"prompt\" nor \"messages\"")
    return Request(COMPLETIONS_PATH, {**body, "prompt": item.prompt})


def request_sha(request: Request) -> str:
    """The item's part of the resume key: what is sent for it, less the fields the fingerprint already holds."""
    if request.path == CHAT_PATH:
        return input_sha(json.dumps(request.body["messages"], ensure_ascii=False, sort_keys=True), True)
    return input_sha(request.body["prompt"], False)


def parse_generation(answer: dict, url: str) -> Generation:
    """A completion answer → Generation. `finish_reason` "length" is the token limit; "stop" is a stop string when
    the server says which one matched (vLLM's `stop_reason`), else the model's end token."""
    choice = first_choice(answer)
    if choice is None:
        raise RequestFailed(f"{url}: the answer has no choices")
    if "message" in choice:
        text = (choice.get("message") or {}).get("content") or ""
    else:
        text = choice.get("text") or ""
    finish = choice.get("finish_reason")
    if finish == "length":
        reason = STOP_LENGTH
    elif isinstance(choice.get("stop_reason"), str):
        reason = STOP_STRING
    else:
        reason = STOP_EOS
    usage = answer.get("usage") or {}
    tokens = usage.get("completion_tokens")
    return Generation(text, reason, int(tokens) if isinstance(tokens, int) else 0)


@dataclass
class _ServedGenerator:
    client: ServedClient
    requests: list[Request]  # per gold item
    ids: list[str]  # per gold item, as the error lines name them
    output: Path
    concurrency: int
    batch_size: int

    def _one(self, index: int, streak: RejectionStreak, retried: frozenset[int]) -> Generation:
        request = self.requests[index]
        streak.check()
        try:
            generation = parse_generation(self.client.post(request.path, request.body),
                                          self.client.base_url + request.path)
        except RequestFailed as err:
            if err.ends_run:
                raise
            streak.failed(self.ids[index], err, counted=index not in retried)
            return Generation("", STOP_ERROR, 0, error=err.message)
        streak.answered()
        return generation

    def __call__(self, todo: list[int], write: Write, retried: frozenset[int] = frozenset()) -> None:
        def hand_back(batch: list[tuple[int, Generation]]) -> None:
            write([todo[j] for j, _ in batch], [g for _, g in batch])

        streak = RejectionStreak()
        try:
            parallel_batches(list(range(len(todo))), lambda j: self._one(todo[j], streak, retried),
                             concurrency=self.concurrency, batch_size=self.batch_size, on_batch=hand_back,
                             abort=self.client.abort)
        except RequestFailed as err:
            raise ServedError(f"{err.message}; the finished items are in {self.output}: rerun the same command "
                              "to resume") from None
        streak.finish(f"the items are in {self.output}")


def served_plan(client: ServedClient, model: str, gold: Sequence[GoldItem], output: Path,
                settings: GenerationSettings, *, gold_source: Path | str = "gold", concurrency: int = 16,
                batch_size: int = 16, keep_special_tokens: bool = True, drop_markers: bool = False) -> RunPlan:
    """The served backend for `run.run_plan`: checks that the server serves `model` (one line if not), builds
    every item's request (all problems at once) and fingerprints the lot."""
    fixed = fixed_fields(keep_special_tokens)
    requests, problems = [], []
    for item in gold:
        try:
            requests.append(item_request(item, model, settings, fixed))
        except ValueError as err:
            problems.append(f"{gold_source}:{item.line}: {err}")
    if problems:
        raise EvalInputError(*problems[:20], *([f"... and {len(problems) - 20} more"] if len(problems) > 20 else []))
    info = client.model_info(model)
    fingerprint = fp.served_fingerprint(model=model, model_info=info, settings=settings, request=fixed)
    shas = {item.key: request_sha(r) for item, r in zip(gold, requests)}
    generator = _ServedGenerator(client, requests, [str(item.id) for item in gold], output, concurrency, batch_size)
    return RunPlan(fingerprint, shas, Normalizer(drop_markers=drop_markers), generator)
