"""A fake Hugging Face Hub on 127.0.0.1 (or ``host``) for tests (never the real Hub).

Downloads (what ``snapshot_download`` uses): GET ``/api/{models,datasets}/<id>/revision/<rev>``,
``.../tree/<sha>``, and HEAD/GET ``[/datasets]/<id>/resolve/<sha>/<file>``.

Uploads (what ``HfApi.create_repo`` + ``create_commit``/``upload_folder`` use for small
files, regular — non-LFS — mode): POST ``/api/repos/create``, ``/api/validate-yaml`` (README.md),
``/api/models/<id>/preupload/<rev>`` and ``/api/models/<id>/commit/<rev>`` (ndjson body:
a ``header`` line, then one ``file`` line per file with base64 content).

Every request is recorded as (method, path, authorization header); uploaded files land in
``hub.repos[("model", id)]["files"]``. With ``token`` set, write requests without
``Authorization: Bearer <token>`` get 401.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self, repos=None, token: Optional[str] = None, host: str = "127.0.0.1"):
        self.repos = repos if repos is not None else {}
        self.token = token
        self.requests = []
        self.created = []  # create_repo payloads
        self.commits = []  # (repo_id, header, [paths])
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.answer(self, body=True)

            def do_HEAD(self):
                hub.answer(self, body=False)

            def do_POST(self):
                hub.answer_post(self)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def send(handler, status, payload=b"", headers=(), body=True, ctype="application/json"):
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(payload)))
        for key, value in headers:
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(payload)

    # ---- downloads ---------------------------------------------------------------------
    def answer(self, handler, body):
        self.requests.append((handler.command, handler.path, handler.headers.get("authorization")))
        parts = [unquote(p) for p in urlsplit(handler.path).path.strip("/").split("/")]
        not_found = [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Repository not found")]
        if parts[0] == "api" and len(parts) >= 5:
            kind = {"models": "model", "datasets": "dataset"}.get(parts[1])
            repo = self.repos.get((kind, "/".join(parts[2:4])))
            if repo is None:
                return self.send(handler, 404, b'{"error": "Repository not found"}', not_found, body)
            if repo.get("gated"):
                return self.send(handler, 403, b'{"error": "gated"}', [
                    ("X-Error-Code", "GatedRepo"), ("X-Error-Message", "Access to this repo is restricted")],
                    body)
            if parts[4] == "revision":
                data = {"id": "/".join(parts[2:4]), "sha": repo["sha"],
                        "siblings": [{"rfilename": p} for p in repo["files"]]}
            elif parts[4] == "tree":
                data = [{"type": "file", "path": p, "size": len(c), "oid": hashlib.sha1(c).hexdigest()}
                        for p, c in repo["files"].items()]
            else:
                return self.send(handler, 404, b"{}", (), body)
            return self.send(handler, 200, json.dumps(data).encode(), (), body)
        kind = "model"
        if parts[0] == "datasets":
            kind, parts = "dataset", parts[1:]
        repo = self.repos.get((kind, "/".join(parts[:2])))
        if repo is None or len(parts) < 5 or parts[2] != "resolve":
            return self.send(handler, 404, b"{}", not_found, body)
        content = repo["files"].get("/".join(parts[4:]))
        if content is None:
            return self.send(handler, 404, b"{}", [("X-Error-Code", "EntryNotFound"),
                                                    ("X-Repo-Commit", repo["sha"])], body)
        headers = [("X-Repo-Commit", repo["sha"]), ("ETag", f'"{hashlib.sha1(content).hexdigest()}"')]
        return self.send(handler, 200, content, headers, body, "application/octet-stream")

    # ---- uploads -----------------------------------------------------------------------
    def answer_post(self, handler):
        length = int(handler.headers.get("content-length") or 0)
        data = handler.rfile.read(length) if length else b""
        self.requests.append((handler.command, handler.path, handler.headers.get("authorization")))
        if self.token is not None and handler.headers.get("authorization") != f"Bearer {self.token}":
            return self.send(handler, 401, b'{"error": "Invalid credentials"}',
                             [("X-Error-Message", "Invalid credentials in Authorization header")])
        parts = [unquote(p) for p in urlsplit(handler.path).path.strip("/").split("/")]
        if parts[:2] == ["api", "validate-yaml"]:  # a README.md in a commit is validated first
            return self.send(handler, 200, b'{"errors": [], "warnings": []}')
        if parts[:3] == ["api", "repos", "create"]:
            payload = json.loads(data or b"{}")
            self.created.append(payload)
            repo_id = f"{payload.get('organization')}/{payload['name']}"
            key = (payload.get("type") or "model", repo_id)
            answer = json.dumps({"url": f"{self.url}/{repo_id}", "name": repo_id}).encode()
            if key in self.repos:
                return self.send(handler, 409, json.dumps(
                    {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}).encode())
            self.repos[key] = {"sha": "0" * 40, "files": {}, "private": payload.get("visibility") == "private"
                               or bool(payload.get("private"))}
            return self.send(handler, 200, answer)
        if len(parts) >= 6 and parts[0] == "api" and parts[1] == "models" and parts[4] in ("preupload", "commit"):
            repo_id = "/".join(parts[2:4])
            repo = self.repos.get(("model", repo_id))
            if repo is None:
                return self.send(handler, 404, b'{"error": "Repository not found"}',
                                 [("X-Error-Code", "RepoNotFound"), ("X-Error-Message", "Repository not found")])
            if parts[4] == "preupload":
                files = json.loads(data)["files"]
                answer = {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                     "oid": None} for f in files]}
                return self.send(handler, 200, json.dumps(answer).encode())
            header, paths = {}, []
            for line in data.decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["key"] == "header":
                    header = item["value"]
                elif item["key"] == "file":
                    value = item["value"]
                    assert value.get("encoding") == "base64"
                    repo["files"][value["path"]] = base64.b64decode(value["content"])
                    paths.append(value["path"])
                else:  # lfsFile, deletedFile ...: not supported by this fake
                    return self.send(handler, 400, json.dumps({"error": f"unsupported {item['key']}"}).encode())
            sha = hashlib.sha1(data).hexdigest()
            repo["sha"] = sha
            self.commits.append((repo_id, header, paths))
            answer = {"commitUrl": f"{self.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                      "pullRequestUrl": None}
            return self.send(handler, 200, json.dumps(answer).encode())
        return self.send(handler, 404, b"{}")


def write_offline_site(tmp, hub_url: str, token: str, data_lines: str) -> None:
    """An offline cluster's site env and a job config for ot-submit tests: the HF cache in
    ``tmp/hub``, ``HF_ENDPOINT`` at the fake hub, a 0600 secret file holding ``token``, a
    stand-in trainer interpreter, and a job config naming ``org/tiny-model`` plus
    ``data_lines`` (``TRAIN_DATA=...`` / ``VAL_DATA=...`` lines)."""
    secret = tmp / "secret.env"
    secret.write_text(f"HF_TOKEN={token}\n")
    secret.chmod(0o600)
    python = tmp / "bin" / "python"
    python.parent.mkdir()
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    (tmp / "envs" / "local.env").write_text(
        f"EXPERIMENTS_DIR={tmp}/exp\nPYTHON={python}\nHF_HUB_CACHE={tmp}/hub\n"
        f"HF_ENDPOINT={hub_url}\nSECRET_ENV_PATH={secret}\n")
    (tmp / "job.env").write_text(
        "CLUSTER=offline\nNUM_NODES=1\nTIME_LIMIT=5\nGPUS_PER_NODE=0\n"
        "SKYRL_ENTRYPOINT=ot_hpc.demo_trainer\nMODEL_PATH=org/tiny-model\n" + data_lines)
