"""A local stand-in for the small part of the Hugging Face Hub API that `HfApi.create_repo` and
`HfApi.upload_folder` use (huggingface_hub 2.x), so the upload path runs for real without a network.

    POST /api/repos/create                          create a repo (409 when it exists)
    POST /api/validate-yaml                         the README's metadata: must be a YAML mapping
    POST /api/models/{repo}/preupload/{revision}    every file "regular": its content comes inline
    POST /api/models/{repo}/commit/{revision}       NDJSON: a header line, then one line per file
    GET  /api/models/{repo}[/revision/{revision}]   repo info

Everything it received is kept in `requests` and `repos` for the test to check. Write calls without
`Authorization: Bearer ...` get a 401, as on the Hub.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

REPO = r"(?P<repo>[^/]+/[^/]+)"


class FakeHub:
    def __init__(self):
        self.requests: list[dict] = []  # method, path, authorization, one per request
        self.repos: dict[str, dict] = {}  # repo id -> {"private", "files": {path: bytes}, "commits": [...]}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------ the API

    def create_repo(self, body: dict):
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        if repo_id in self.repos:
            return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}
        private = body.get("visibility") == "private" or body.get("private") is True
        self.repos[repo_id] = {"private": private, "type": body.get("type", "model"), "files": {}, "commits": []}
        return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()}

    def validate_yaml(self, body: dict):
        match = re.match(r"^---\n(.*?)\n---\n", body.get("content", ""), re.S)
        try:
            meta = yaml.safe_load(match.group(1)) if match else {}
        except yaml.YAMLError as e:
            return 400, {"errors": [{"message": f"invalid YAML: {e}"}]}
        if not isinstance(meta, dict):
            return 400, {"errors": [{"message": "metadata must be a mapping"}]}
        return 200, {"errors": [], "warnings": []}

    def preupload(self, repo_id: str, body: dict):
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                 for f in body["files"]]
        return 200, {"files": files, "commitOid": self._head(repo_id)}

    def commit(self, repo_id: str, raw: bytes):
        lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        header, ops = lines[0], lines[1:]
        if header.get("key") != "header":
            return 400, {"error": "the first NDJSON line must be the commit header"}
        added = {}
        for op in ops:
            if op["key"] != "file" or op["value"].get("encoding") != "base64":
                return 400, {"error": f"this fake Hub takes inline base64 files only, got {op['key']}"}
            added[op["value"]["path"]] = base64.b64decode(op["value"]["content"])
        repo = self.repos[repo_id]
        repo["files"].update(added)
        oid = hashlib.sha1(f"{repo_id}{len(repo['commits'])}".encode()).hexdigest()
        repo["commits"].append({"oid": oid, "summary": header["value"]["summary"], "paths": sorted(added)})
        return 200, {"success": True, "commitOid": oid, "commitUrl": f"{self.url}/{repo_id}/commit/{oid}"}

    def info(self, repo_id: str):
        repo = self.repos[repo_id]
        return 200, {"id": repo_id, "modelId": repo_id, "private": repo["private"], "sha": self._head(repo_id),
                     "siblings": [{"rfilename": p} for p in sorted(repo["files"])]}

    def _head(self, repo_id: str) -> str:
        commits = self.repos[repo_id]["commits"]
        return commits[-1]["oid"] if commits else "0" * 40

    # ------------------------------------------------------------ HTTP plumbing

    def _route(self, method: str, path: str, headers, raw: bytes):
        path = path.split("?")[0]
        authorized = (headers.get("authorization") or "").startswith("Bearer ")
        with self.lock:
            self.requests.append({"method": method, "path": path, "authorization": headers.get("authorization")})
            if method == "POST" and not authorized:
                return 401, {"error": "Invalid credentials in Authorization header"}
            if method == "POST" and path == "/api/repos/create":
                return self.create_repo(json.loads(raw))
            if method == "POST" and path == "/api/validate-yaml":
                return self.validate_yaml(json.loads(raw))
            match = re.fullmatch(rf"/api/models/{REPO}(?:/(?P<op>preupload|commit|revision)/(?P<rev>[^/]+))?", path)
            if not match or match["repo"] not in self.repos:
                return 404, {"error": "Repository not found"}
            if method == "POST" and match["op"] == "preupload":
                return self.preupload(match["repo"], json.loads(raw))
            if method == "POST" and match["op"] == "commit":
                return self.commit(match["repo"], raw)
            if method == "GET" and match["op"] in (None, "revision"):
                return self.info(match["repo"])
            return 405, {"error": f"{method} {path} is not part of this fake Hub"}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, body = hub._route(method, self.path, self.headers, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 404:
                    self.send_header("X-Error-Code", "RepoNotFound")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def log_message(self, *args):  # keep pytest's output clean
                pass

        return Handler
