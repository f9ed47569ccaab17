"""A local stand-in for the few Hugging Face Hub routes that `huggingface_hub` 2.4's `create_repo` and
`create_commit` call (read from its code: hf_api.py, _commit_api.py), on 127.0.0.1, port chosen by the system.

    POST /api/repos/create                          {"name", "organization", "type", "visibility"} → {"url"}
    GET  /api/{type}s/{owner}/{name}                 repo_info (create_repo asks it after a 401/403 with exist_ok)
    POST /api/validate-yaml                          the README's front matter → {"errors": [], "warnings": []}
    POST /api/{type}s/{owner}/{name}/preupload/{rev} {"files": [{path, sample, size}]} → every file "regular"
    POST /api/{type}s/{owner}/{name}/commit/{rev}    NDJSON: a header line, then {"key": "file", "value":
                                                     {"path", "content" (base64), "encoding"}} → {"commitUrl", ...}

Every file answered "regular" goes inline in the commit (no LFS or Xet upload). Each request is recorded (method,
path, headers with lower-case names, body) and the committed files are kept as bytes, so a test checks what arrived. A request whose
bearer token is not `token` is answered 401.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hub:
    token: str
    url: str = ""
    requests: list[dict] = field(default_factory=list)
    repos: dict[str, dict] = field(default_factory=dict)  # "type:owner/name" -> {"private": bool, "files": {}}
    commits: list[dict] = field(default_factory=list)

    def files(self, repo_type: str, repo_id: str) -> dict[str, bytes]:
        return self.repos[f"{repo_type}:{repo_id}"]["files"]


def _handler(hub: Hub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status: int, body: dict | None = None) -> None:
            data = json.dumps(body or {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 404:
                self.send_header("X-Error-Code", "RepoNotFound")
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            hub.requests.append({"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "body": body})
            return body

        def _authorized(self) -> bool:
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                self._reply(401, {"error": "Invalid credentials in Authorization header"})
                return False
            return True

        def _repo_route(self) -> tuple[str, str, str, str] | None:
            # /api/{type}s/{owner}/{name}[/{action}/{rev}]
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) >= 4 and parts[0] == "api" and parts[1] in ("models", "datasets"):
                action = parts[4] if len(parts) > 4 else ""
                return parts[1][:-1], f"{parts[2]}/{parts[3]}", action, parts[5] if len(parts) > 5 else ""
            return None

        def do_GET(self):
            self._record()
            if not self._authorized():
                return
            route = self._repo_route()
            if route and not route[2] and f"{route[0]}:{route[1]}" in hub.repos:
                self._reply(200, {"id": route[1], "sha": "0" * 40, "private": hub.repos[f"{route[0]}:{route[1]}"]
                                  ["private"]})
                return
            self._reply(404, {"error": "Repository not found"})

        def do_POST(self):
            body = self._record()
            path = self.path.split("?", 1)[0]
            if path == "/api/validate-yaml":
                self._reply(200, {"errors": [], "warnings": []})
                return
            if not self._authorized():
                return
            if path == "/api/repos/create":
                req = json.loads(body)
                repo_type = req.get("type") or "model"
                repo_id = f"{req['organization']}/{req['name']}"
                key = f"{repo_type}:{repo_id}"
                if key in hub.repos:
                    self._reply(409, {"error": "You already created this repo"})
                    return
                hub.repos[key] = {"private": req.get("visibility") == "private", "files": {}}
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                self._reply(200, {"url": f"{hub.url}/{prefix}{repo_id}"})
                return
            route = self._repo_route()
            if route is None or f"{route[0]}:{route[1]}" not in hub.repos:
                self._reply(404, {"error": "Repository not found"})
                return
            repo_type, repo_id, action, _rev = route
            if action == "preupload":
                files = json.loads(body)["files"]
                self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                             "oid": None} for f in files]})
                return
            if action == "commit":
                lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                header = next(x["value"] for x in lines if x["key"] == "header")
                files = {}
                for x in lines:
                    if x["key"] == "file":
                        assert x["value"]["encoding"] == "base64"
                        files[x["value"]["path"]] = base64.b64decode(x["value"]["content"])
                    elif x["key"] != "header":
                        self._reply(400, {"error": f"this test server takes inline files only, not {x['key']}"})
                        return
                hub.repos[f"{repo_type}:{repo_id}"]["files"].update(files)
                hub.commits.append({"repo": repo_id, "type": repo_type, "summary": header["summary"],
                                    "files": sorted(files)})
                oid = f"{len(hub.commits):040x}"
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                self._reply(200, {"commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{oid}", "commitOid": oid})
                return
            self._reply(404, {"error": f"no route {path}"})

    return Handler


class HubServer:
    """`with HubServer(token) as hub:` serves on 127.0.0.1 in a thread; `hub.url` is its endpoint."""

    def __init__(self, token: str):
        self.hub = Hub(token)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self.hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self.hub

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
