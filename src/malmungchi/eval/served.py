"""A small client for OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp, the OpenAI API itself).

Only what `eval run --backend openai` and `eval judge` need: `GET /models`, `POST /completions`,
`POST /chat/completions`, with

- bounded concurrency (`parallel_batches`: a thread pool of `concurrency` workers; each finished task is handed
  back in the calling thread, `batch_size` at a time, so the caller appends and fsyncs a batch at once);
- retries with exponential backoff on 429, 5xx, timeouts and dropped connections, or after the server's
  `Retry-After` (seconds or an HTTP date; its own, larger cap, and 0-25% added so the workers a 429 sent away
  do not all come back at once); other 4xx answers are not retried (`RequestFailed.rejected`: the server refuses
  this request, e.g. a prompt over its `max_model_len`);
- one-line errors that say what to do: a server that cannot be reached, a model name it does not serve, a
  refused API key, a redirect (httpx does not follow one: the URL to pass instead), and `RejectionStreak`:
  requests all rejected alike (a parameter the server does not take would otherwise fail every item), or all
  failing on the server's side (5xx or no answer, after their retries).

A request the server answered but that failed for good is that item's own failure (`RequestFailed.ends_run`
False): a 4xx it refuses, or a 5xx, timeout or garbled answer that its retries did not get past (one prompt that
crashes the server's tokenizer must not stop every rerun at that item). A server that cannot be reached, one that
still rate-limits (429) after the retries, or a command that is stopping, ends the run; so does a run in which
the server answered nothing and failed something (`RejectionStreak.finish`).

The API key is sent in the `Authorization` header only; every message made from a server's answer goes through
`redact`, so the key never reaches a results file, a log or an error line, even from a server that echoes it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

from malmungchi.errors import UserError

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
STARTUP_RETRIES = 2  # for the first request: a wrong URL should be one line within a second or two, not after 15 s
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
REJECTION_STREAK = 5  # failures in a row, alike, that stop a command (RejectionStreak)
_BODY_CHARS = 200  # of a server's error body quoted in a message
_JITTER = random.Random()  # its own generator: waits must not move the global one a seeded caller relies on


class ServedError(UserError):
    """The server could not be used at all (unreachable, unknown model, refused key): stops the command."""


class RequestFailed(Exception):
    """One request failed for good (after its retries, or a 4xx that retrying cannot fix); `message` is
    already redacted."""

    def __init__(self, message: str, status: int | None = None, unreachable: bool = False, stopping: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.unreachable = unreachable  # the last try could not connect at all: the server is gone
        self.stopping = stopping  # not retried because the client was closed: the command is stopping

    @property
    def ends_run(self) -> bool:
        """The server is gone, still rate-limits after the retries, or the command is stopping: no item's own
        failure, so the run stops (and says to rerun later) instead of failing every item left."""
        return self.unreachable or self.stopping or self.status == 429

    @property
    def rejected(self) -> bool:
        """The server answered and refused this request (a 4xx that retrying cannot fix, e.g. a prompt longer than
        its max_model_len): the item's own failure, not the server's."""
        return self.status is not None and 400 <= self.status < 500 and self.status not in RETRY_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5  # retries after the first try
    base_delay: float = 0.5  # seconds before the first retry; doubled each time
    max_delay: float = 30.0  # of the backoff
    max_retry_after: float = 120.0  # of a wait the server asked for: it knows its queue better than a guess

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry `attempt` (0-based): the server's Retry-After when it gives one (capped)
        plus 0-25%, else base · 2^attempt with ±25% jitter, so 40 workers do not all come back at the same
        instant."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after) * _JITTER.uniform(1.0, 1.25)
        return min(self.base_delay * (2 ** attempt), self.max_delay) * _JITTER.uniform(0.75, 1.25)


class RejectionStreak:
    """Stops a command whose server fails its requests all alike: after `limit` in a row a ServedError names the
    first item and the message. Alike: rejected with one message (`RequestFailed.rejected`), or failed on the
    server's side whatever the message (5xx, no answer; a server in trouble words its errors many ways). An answer
    breaks the streak. Items asked again after an earlier rejection are left out (`counted=False`): one rejected
    for itself (a prompt too long) must not stop every rerun; a server-side failure counts whoever it hits, or a
    dead server would fail five more items on every rerun. Thread-safe: the workers report to one streak, and
    `check` before each request keeps a worker that starts after the stop from sending one more."""

    def __init__(self, limit: int = REJECTION_STREAK):
        self.limit = limit
        self._lock = threading.Lock()
        self._first: str | None = None
        self._key: str | None = None
        self._message: str | None = None
        self._count = 0
        self._stop: ServedError | None = None
        self._answers = 0
        self._fresh_failures = 0  # server-side failures of items not asked before (`finish`)

    def check(self) -> None:
        if self._stop is not None:
            raise self._stop

    def answered(self) -> None:
        with self._lock:
            self._count = 0
            self._answers += 1

    def finish(self, where: str) -> None:
        """After the last request: a server that answered nothing and failed on its side for items never asked
        before is not up, however few they were (fewer than the limit): a ServedError, so the command does not end
        as if it had run. Items that failed before and fail again are not enough: one prompt that crashes the
        server must not make every rerun exit with an error."""
        if self._answers == 0 and self._fresh_failures:
            raise ServedError(f"the server answered none of the requests it was sent ({self._fresh_failures} new "
                              f"item(s) failed on its side), first item {self._first!r}: {self._message}; check the "
                              f"server's log, then rerun the same command ({where})")

    def failed(self, item_id: str, err: RequestFailed, *, counted: bool = True) -> None:
        """An item's request failed for good (`err.ends_run` False); raises the ServedError at the limit."""
        key = err.message if err.rejected else None  # None: failed on the server's side, whatever the words
        if not counted and key is not None:
            return
        with self._lock:
            if key is None and counted:
                self._fresh_failures += 1
            if self._count == 0 or key != self._key:
                self._first, self._key, self._message, self._count = item_id, key, err.message, 0
            self._count += 1
            if self._count >= self.limit:
                if key is not None:
                    what = "rejected {} requests in a row the same way"
                    todo = "check what is sent against what the server takes"
                else:
                    what = "failed {} requests in a row on its side (5xx, timeout, garbled answer)"
                    todo = "check the server's log"
                self._stop = ServedError(f"the server {what.format(self._count)}, from item {self._first!r} on: "
                                         f"{self._message}; {todo}, then rerun the same command to resume")
                raise self._stop


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def normalize_base_url(url: str) -> str:
    """`http://host:8000/v1` as the OpenAI clients expect it: a scheme, no trailing slash."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--base-url {url}: give an http:// or https:// URL ending in /v1 "
                        "(e.g. http://127.0.0.1:8000/v1)")
    return url


class ServedClient:
    """Thread-safe: one httpx connection pool shared by the workers."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 retry: RetryPolicy = RetryPolicy(), concurrency: int = 16):
        import httpx

        self.base_url = normalize_base_url(base_url)
        self.retry = retry
        self._key = api_key or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._http = httpx.Client(headers=headers, timeout=timeout, limits=limits)
        self._sleep = threading.Event()  # set by close(): a waiting retry gives up at once

    def close(self) -> None:
        self._sleep.set()
        self._http.close()

    def abort(self, hard: bool) -> None:
        """Stop: no request waits for a retry any more; `hard` (Ctrl-C) also closes the connections, so a request
        in flight fails at once instead of finishing (its answer is lost, and asked again on resume)."""
        self._sleep.set()
        if hard:
            self._http.close()

    def __enter__(self) -> ServedClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------------------------

    def get(self, path: str, *, retries: int | None = None) -> dict:
        return self._request("GET", path, None, retries)

    def post(self, path: str, body: dict) -> dict:
        return self._request("POST", path, body, None)

    def _request(self, method: str, path: str, body: dict | None, retries: int | None) -> dict:
        """The answer's JSON object; RequestFailed once the retries are spent or the error cannot be retried;
        ServedError for what stops everything (no server, a refused key, an unknown model)."""
        import httpx

        url = f"{self.base_url}{path}"
        last, status = "", None
        retries = self.retry.max_retries if retries is None else retries
        for attempt in range(retries + 1):
            retry_after, unreachable, status = None, False, None
            try:
                response = self._http.request(method, url, json=body)
            except httpx.TimeoutException:
                last = f"{url}: no answer within the timeout"
            except httpx.TransportError as err:
                last, unreachable = f"{url}: cannot reach the server ({_reason(err)})", True
            else:
                status = response.status_code
                if 300 <= status < 400:
                    raise ServedError(self._redirect_message(url, path, response))
                if status < 400:
                    obj = _json_object(response)
                    if obj is not None:
                        return obj
                    # a garbled answer (a proxy cut it, the server crashed mid-write) is worth another try
                    last = f"{url}: the answer is not a JSON object: {redact(response.text[:_BODY_CHARS], self._key)!r}"
                else:
                    detail = redact(_error_detail(response), self._key)
                    if status in (401, 403):
                        raise ServedError(f"{url}: the server refused the API key ({status}: {detail}); set the "
                                          "variable named by --api-key-env to a key it accepts")
                    if status == 404 and _unknown_model(detail):
                        raise ServedError(f"{url}: {detail}; check the model name against {self.base_url}/models")
                    last = f"{url}: HTTP {status}: {detail}"
                    if status not in RETRY_STATUSES:
                        raise RequestFailed(last, status)
                    retry_after = _retry_after(response)
            if attempt < retries and self._sleep.wait(self.retry.delay(attempt, retry_after)):
                # the client was closed while waiting: the command is stopping, not out of retries
                raise RequestFailed(f"{last} (not retried: stopping)", status, unreachable, stopping=True)
        # a last try cut short by a stop (the hard close of an abort) is the stop's, not the item's
        raise RequestFailed(f"{last} (after {retries + 1} tries)", status, unreachable, stopping=self._sleep.is_set())

    def _redirect_message(self, url: str, path: str, response) -> str:
        location = response.headers.get("location")
        if not location:
            return f"{url}: HTTP {response.status_code} redirect without a Location; check --base-url"
        target = redact(urljoin(url, location), self._key)
        base = target[:-len(path)] if target.endswith(path) else target
        return (f"{url}: the server redirects (HTTP {response.status_code}) to {target}; pass --base-url {base} "
                "(redirects are not followed)")

    # -- the model ------------------------------------------------------------------------------------------

    def model_info(self, name: str) -> dict:
        """The `/models` entry for `name` (its id, root, max_model_len where the server says): a one-line
        ServedError when the server cannot be reached or does not serve that model."""
        try:
            listing = self.get("/models", retries=min(self.retry.max_retries, STARTUP_RETRIES))
        except RequestFailed as err:
            raise ServedError(f"{err.message}; is the server running at {self.base_url}? (the URL ends in /v1)")
        models = [m for m in listing.get("data") or [] if isinstance(m, dict)]
        for m in models:
            if m.get("id") == name:
                return m
        served = ", ".join(str(m.get("id")) for m in models) or "none"
        raise ServedError(f"{self.base_url}: serves no model named {name!r} (it serves: {served}); "
                          "give one of these to --served-model / --judge-model")


def parallel_batches(tasks: Sequence[Any], work: Callable[[Any], Any], *, concurrency: int, batch_size: int,
                     on_batch: Callable[[list[tuple[int, Any]]], None], abort: Callable[[bool], None]) -> None:
    """Run `work(task)` for every task on `concurrency` threads; hand back `(index, result)` pairs in the calling
    thread, `batch_size` at a time as they finish (at most `batch_size` finished results wait unwritten).

    When `work` raises, the tasks not started are cancelled, `abort(False)` stops the running ones from waiting
    for retries, the requests in flight are let finish (a dead server fails them at once), whatever finished well
    is handed back, and the error is raised here: no answer had is lost, nothing hangs on a dead server. On
    Ctrl-C, `abort(True)` drops the requests in flight too."""
    if not tasks:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="served")
    futures: dict[Future, int] = {pool.submit(work, t): i for i, t in enumerate(tasks)}
    waiting = set(futures)
    pending: list[tuple[int, Any]] = []
    try:
        while waiting:
            finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            error = None
            for f in _in_order(finished, futures):
                if f.exception() is not None:
                    error = error or f.exception()
                    continue
                pending.append((futures[f], f.result()))
                if len(pending) >= batch_size:
                    batch, pending = pending, []
                    on_batch(batch)
            if error is not None:
                raise error
    except BaseException as err:
        for f in waiting:
            f.cancel()
        abort(isinstance(err, KeyboardInterrupt))
        pool.shutdown(wait=True)
        pending += [(futures[f], f.result()) for f in _in_order(waiting, futures)
                    if not f.cancelled() and f.exception() is None]
        if pending:
            on_batch(pending)
        raise
    pool.shutdown(wait=True)
    if pending:
        on_batch(pending)


def _in_order(finished: Iterable[Future], futures: dict[Future, int]) -> list[Future]:
    return sorted(finished, key=lambda f: futures[f])


def first_choice(answer: dict) -> dict | None:
    """`choices[0]` of a completion answer, or None when it has no such object."""
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0]


def _json_object(response) -> dict | None:
    try:
        obj = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def _reason(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def _error_detail(response) -> str:
    """The server's error message (`{"error": {"message": ...}}`, `{"message": ...}`, `{"detail": ...}`), else the
    start of the body."""
    obj = _json_object(response)
    if obj is not None:
        err = obj.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:_BODY_CHARS]
        for key in ("message", "detail", "error"):
            if isinstance(obj.get(key), str) and obj[key]:
                return obj[key][:_BODY_CHARS]
    text = response.text.strip().replace("\n", " ")
    return text[:_BODY_CHARS] or response.reason_phrase


def _unknown_model(detail: str) -> bool:
    low = detail.lower()
    return "model" in low and ("does not exist" in low or "not found" in low or "unknown" in low)


def _retry_after(response) -> float | None:
    """Seconds the server asks to wait: `Retry-After: 30` or `Retry-After: Wed, 21 Oct 2015 07:28:00 GMT`
    (None when it gives neither)."""
    value = (response.headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - time.time()
