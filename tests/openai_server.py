"""A real OpenAI-compatible HTTP server for the tests, on 127.0.0.1 (port 0) in a thread: stdlib
`ThreadingHTTPServer` serving `/v1/models`, `/v1/completions` and `/v1/chat/completions`.

What answers a request is a function `respond(path, body) -> (status, payload)` or `(status, payload, headers)`
(payload: a dict sent as JSON, or a str sent as is): `TinyModelResponder` generates with a tiny transformers model the way vLLM does (text
prompts with the tokenizer's special tokens, chat through the chat template, greedy at temperature 0, stop
strings cut out, `finish_reason` and `stop_reason`), a test's own function scripts a judge. The server records
every request (path, body, headers, arrival time), counts the requests in flight at once, and can play the
failures the clients must survive: `fail_first` answers `fail_status` (429) to the first requests with the
`Retry-After` that `retry_after()` gives (seconds or an HTTP date), `die_after` drops the connection and shuts the
whole server down after that many completions, `redirect_to` answers every request with a 307 to that URL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Responder = Callable[[str, dict], "tuple[int, dict | str] | tuple[int, dict | str, dict]"]


OVERLAP_WAIT = 5.0  # seconds a completion waits for others to arrive (`overlap`)


class OpenAIServer:
    def __init__(self, respond: Responder, models: tuple[str, ...] = ("tiny",), *, fail_first: int = 0,
                 die_after: int | None = None, delay: float = 0.0, overlap: int = 0, fail_status: int = 429,
                 retry_after: Callable[[], str] = lambda: "0", redirect_to: str | None = None):
        self.respond = respond
        self.models = models
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.redirect_to = redirect_to
        self.die_after = die_after
        self.delay = delay  # seconds each completion takes at least (so concurrency shows)
        # completions wait (up to OVERLAP_WAIT s) until this many requests were in flight at once: a concurrent
        # client then shows its concurrency however loaded the machine is, a serial one never reaches it
        self.overlap = overlap
        self.requests: list[dict] = []  # {"path", "body", "headers", "at"} of every POST, in arrival order
        self.answered = 0  # completions answered with 200
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self._arrived = threading.Condition(self.lock)
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> OpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self.stop()

    def completions_bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests if r["path"].endswith("completions")]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away mid-answer (the dying server's own doing) is not the test's output


def _handler(server: OpenAIServer):
    import time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, payload, headers: dict | None = None) -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _redirected(self) -> bool:
            if server.redirect_to is None:
                return False
            self._send(307, "", {"Location": server.redirect_to + self.path.removeprefix("/v1")})
            return True

        def do_GET(self) -> None:
            if self._redirected():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "test",
                                                              "root": f"/models/{m}"} for m in server.models]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self._redirected():
                return
            path = self.path.removeprefix("/v1")
            with server.lock:
                server.requests.append({"path": path, "body": body, "headers": dict(self.headers),
                                        "at": time.time()})
                n = len(server.requests)
                dying = server.die_after is not None and server.answered >= server.die_after
                server.in_flight += 1
                server.max_in_flight = max(server.max_in_flight, server.in_flight)
                server._arrived.notify_all()
            try:
                if dying:  # drop this connection without an answer, then stop listening altogether
                    self.close_connection = True
                    threading.Thread(target=server.stop, daemon=True).start()
                    return
                if n <= server.fail_first:
                    self._send(server.fail_status, {"error": {"message": "rate limited, slow down"}},
                               {"Retry-After": server.retry_after()})
                    return
                if path not in ("/completions", "/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if body.get("model") not in server.models:
                    self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
                    return
                if server.overlap:
                    with server.lock:
                        server._arrived.wait_for(lambda: server.max_in_flight >= server.overlap, OVERLAP_WAIT)
                if server.delay:
                    time.sleep(server.delay)
                status, payload, *headers = server.respond(path, body)
                if status == 200:
                    with server.lock:
                        server.answered += 1
                self._send(status, payload, *headers)
            finally:
                with server.lock:
                    server.in_flight -= 1

    return Handler


class TinyModelResponder:
    """Completions from a local model folder, answered like vLLM: one model.generate per request (under a lock:
    one model, many handler threads), through the same prompt handling as `eval run`'s local backend."""

    def __init__(self, model, tokenizer):
        from malmungchi.eval.generate import ensure_pad_token, stop_token_ids

        self.model, self.tokenizer = model, tokenizer
        ensure_pad_token(tokenizer)
        self.stop_ids = stop_token_ids(tokenizer, model)
        self.lock = threading.Lock()
        self._arrived = threading.Condition(self.lock)

    def __call__(self, path: str, body: dict):
        from malmungchi.eval.generate import STOP_LENGTH, STOP_STRING, GenerationSettings, encode, generate_batch

        chat = path == "/chat/completions"
        if chat:
            text = self.tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, tokenize=False)
        else:
            text = body["prompt"]
        ids = encode(self.tokenizer, [text], [chat])
        stops = body.get("stop") or []
        settings = GenerationSettings(max_new_tokens=body.get("max_tokens", 16),
                                      temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0),
                                      seed=body.get("seed") or 0, stop_strings=tuple(stops))
        with self.lock:
            if settings.sampling:
                import torch

                torch.manual_seed(settings.seed)
            gen = generate_batch(self.model, self.tokenizer, ids, settings, self.stop_ids)[0]
        finish = "length" if gen.stop_reason == STOP_LENGTH else "stop"
        stop_reason = next((s for s in stops if gen.stop_reason == STOP_STRING), None)
        choice = {"index": 0, "finish_reason": finish, "stop_reason": stop_reason}
        choice.update({"message": {"role": "assistant", "content": gen.text}} if chat else {"text": gen.text})
        usage = {"prompt_tokens": len(ids[0]), "completion_tokens": gen.new_tokens,
                 "total_tokens": len(ids[0]) + gen.new_tokens}
        return 200, {"id": "cmpl-test", "object": "chat.completion" if chat else "text_completion",
                     "model": body["model"], "choices": [choice], "usage": usage}
