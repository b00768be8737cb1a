"""A fake model hub on 127.0.0.1: the Hugging Face routes ``snapshot_download`` uses and the
ModelScope file API routes of annotators/modelscope_files.py, serving repositories held in memory.

Hugging Face: ``GET /api/models/{id}[/revision/{rev}]`` (the commit and the file list),
``GET /api/models/{id}/tree/{rev}`` (the recursive listing), ``HEAD|GET /{id}/resolve/{rev}/{file}``.
ModelScope: ``GET /api/v1/models/{id}/repo/files?Revision=&Recursive=`` and
``GET /api/v1/models/{id}/repo?Revision=&FilePath=``. Both download routes honour ``Range: bytes=N-``
(206 with Content-Range). A file named in :attr:`FakeHub.drop_once` is cut off halfway, with the full
Content-Length announced, the first time it is fetched from the start: an interrupted download.
Every request is recorded (method, path, Range header) so tests can check what the client asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Repo:
    files: dict[str, bytes]
    commit: str = field(default_factory=lambda: hashlib.sha1(b"fake-hub").hexdigest())


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    query: dict[str, str]
    range: str | None


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """Repositories by id; :meth:`start` serves them on a free loopback port."""

    __test__ = False

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[Request] = []
        self.drop_once: set[str] = set()  # file paths cut off halfway on their first full fetch
        self.dropped: set[str] = set()
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                self._serve(body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                self._serve(body=False)

            def _serve(self, body: bool) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                request = Request(self.command, unquote(parts.path), query, self.headers.get("Range"))
                with hub.lock:
                    hub.requests.append(request)
                try:
                    hub.route(self, request, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # --- lifecycle --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> FakeHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, repo_id: str, files: dict[str, bytes], commit: str | None = None) -> Repo:
        repo = Repo(dict(files), commit or hashlib.sha1(repo_id.encode()).hexdigest())
        self.repos[repo_id] = repo
        return repo

    def file_requests(self, name: str) -> list[Request]:
        """The download requests (GET) of a file, on either hub's routes."""
        return [r for r in self.requests if r.method == "GET" and
                (r.path.endswith("/" + name) and "/resolve/" in r.path or r.query.get("FilePath") == name)]

    # --- routing ----------------------------------------------------------------------------------
    def route(self, handler: BaseHTTPRequestHandler, request: Request, body: bool) -> None:
        path = request.path
        if m := re.fullmatch(r"/api/models/(.+)/revision/([^/]+)", path):
            self._hf_info(handler, m.group(1), m.group(2))
        elif m := re.fullmatch(r"/api/models/(.+)/tree/([^/]+)(/.*)?", path):
            self._hf_tree(handler, m.group(1), m.group(2))
        elif m := re.fullmatch(r"/api/models/([^/]+(?:/[^/]+)?)", path):
            self._hf_info(handler, m.group(1), "main")
        elif m := re.fullmatch(r"/api/v1/models/(.+)/repo/files", path):
            self._ms_files(handler, m.group(1), request.query.get("Revision") or "master")
        elif m := re.fullmatch(r"/api/v1/models/(.+)/repo", path):
            self._ms_file(handler, request, m.group(1), request.query.get("FilePath", ""), body)
        elif m := re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", path):
            self._hf_file(handler, request, m.group(1), m.group(2), m.group(3), body)
        else:
            self._json(handler, 404, {"error": f"no route {path}"})

    def _repo(self, repo_id: str, revision: str) -> Repo | None:
        repo = self.repos.get(repo_id)
        if repo is None or revision not in ("main", "master", repo.commit):
            return None
        return repo

    @staticmethod
    def _json(handler: BaseHTTPRequestHandler, status: int, payload: object,
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        if status == 404:
            handler.send_header("X-Error-Code", "RepoNotFound")
        handler.end_headers()
        handler.wfile.write(data)

    def _hf_info(self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_id, revision)
        if repo is None:
            self._json(handler, 404, {"error": "Repository not found"})
            return
        self._json(handler, 200, {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False,
                                  "siblings": [{"rfilename": name} for name in sorted(repo.files)]})

    def _hf_tree(self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_id, revision)
        if repo is None:
            self._json(handler, 404, {"error": "Repository not found"})
            return
        self._json(handler, 200, [{"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
                                  for name, data in sorted(repo.files.items())])

    def _hf_file(self, handler: BaseHTTPRequestHandler, request: Request, repo_id: str, revision: str,
                 name: str, body: bool) -> None:
        repo = self._repo(repo_id, revision)
        if repo is None or name not in repo.files:
            self._json(handler, 404, {"error": "Entry not found"})
            return
        data = repo.files[name]
        self._bytes(handler, request, name, data, body, {
            "X-Repo-Commit": repo.commit, "ETag": f'"{git_blob_id(data)}"'})

    def _ms_files(self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_id, revision)
        if repo is None:
            self._json(handler, 404, {"Code": 10010205001, "Message": "model not found", "Success": False})
            return
        files = [{"Name": name.rsplit("/", 1)[-1], "Path": name, "Type": "blob", "Size": len(data),
                  "Sha256": hashlib.sha256(data).hexdigest(), "Revision": repo.commit, "IsLFS": False}
                 for name, data in sorted(repo.files.items())]
        self._json(handler, 200, {"Code": 200, "Data": {"Files": files}, "Message": "success", "Success": True})

    def _ms_file(self, handler: BaseHTTPRequestHandler, request: Request, repo_id: str, name: str,
                 body: bool) -> None:
        repo = self._repo(repo_id, request.query.get("Revision") or "master")
        if repo is None or name not in repo.files:
            self._json(handler, 404, {"Code": 404, "Message": "file not found", "Success": False})
            return
        self._bytes(handler, request, name, repo.files[name], body, {})

    def _bytes(self, handler: BaseHTTPRequestHandler, request: Request, name: str, data: bytes, body: bool,
               headers: dict[str, str]) -> None:
        """The file, or its tail for ``Range: bytes=N-``; cut off halfway once if in drop_once."""
        start = 0
        if request.range and (m := re.fullmatch(r"bytes=(\d+)-", request.range.strip())):
            start = int(m.group(1))
        part = data[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(part)))
        handler.send_header("Accept-Ranges", "bytes")
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        if not body:
            return
        with self.lock:
            drop = start == 0 and name in self.drop_once and name not in self.dropped
            if drop:
                self.dropped.add(name)
        if drop:
            handler.wfile.write(part[: len(part) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the peer sees the body end early
            return
        handler.wfile.write(part)
