"""A Hugging Face Hub on 127.0.0.1 that speaks the endpoints an upload uses.

``huggingface_hub.HfApi(endpoint=hub.url).create_repo`` + ``upload_folder`` call:

- ``POST /api/repos/create`` (409 when the repository exists),
- ``POST /api/validate-yaml`` (the README front matter must be a YAML mapping),
- ``POST /api/{type}s/{owner}/{name}/preupload/{revision}``: every file is answered
  ``uploadMode: regular`` (its content arrives base64-encoded in the commit), except
  those ending in one of ``lfs_suffixes``, answered ``lfs`` as the real Hub answers
  binaries. An LFS file then goes through the Git LFS batch API
  (``POST /{prefix}{owner}/{name}.git/info/lfs/objects/batch``, ``basic`` transfer), is
  ``PUT`` to the ``href`` it was given, and the commit names it by sha256. (Without
  ``HF_HUB_DISABLE_XET`` huggingface_hub sends LFS files through Xet storage instead,
  which this server does not speak: keep ``lfs_suffixes`` empty then.)
- ``POST /api/{type}s/{owner}/{name}/commit/{revision}`` (an NDJSON commit),
- ``POST /api/{type}s/{owner}/{name}/branch/{branch}`` (when a revision is given).

and ``huggingface_hub.snapshot_download`` (what ``Speech2Text.from_pretrained`` calls):

- ``GET /api/models/{owner}/{name}/revision/{revision}`` (the commit a branch points at),
- ``GET /api/models/{owner}/{name}/tree/{commit}`` (the files, with git blob ids),
- ``HEAD`` / ``GET /{owner}/{name}/resolve/{commit}/{path}`` (metadata headers, content).

Writes must carry ``Authorization: Bearer <token>`` (reads are public); the files that
arrived are kept in :attr:`LocalHub.repos` so a test can compare them with the folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml


@dataclass
class Repo:
    repo_type: str
    private: bool
    sdk: str | None
    #: revision -> path -> bytes
    files: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    commits: list[str] = field(default_factory=list)
    #: branch -> commit, and commit -> path -> bytes
    heads: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def snapshot(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        """(commit, files) of a branch name or a commit id; None when unknown."""
        commit = self.heads.get(revision, revision)
        return (commit, self.snapshots[commit]) if commit in self.snapshots else None


def _blob_id(data: bytes) -> str:
    """Git's blob id of ``data`` (what the Hub reports as a file's ``oid`` and ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

class LocalHub:
    """Context manager: ``with LocalHub(token="hf_x") as hub: ... hub.url ...``."""

    def __init__(self, token: str, *, lfs_suffixes: tuple[str, ...] = ()) -> None:
        self.token = token
        self.lfs_suffixes = lfs_suffixes
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.cards: list[dict[str, Any]] = []  # front matter of each validated README
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _reply(self, status: int, body: dict[str, Any], error_code: str | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if error_code:
                    self.send_header("X-Error-Code", error_code)
                    self.send_header("X-Error-Message", body.get("error", ""))
                self.end_headers()
                self.wfile.write(data)

            def _find(self, parts: list[str]) -> Repo | None:
                repo_type = "model"
                if parts and parts[0] in ("spaces", "datasets"):
                    repo_type, parts = parts[0][:-1], parts[1:]
                return hub.repos.get((repo_type, "/".join(parts[:2])))

            def do_HEAD(self) -> None:  # noqa: N802 (http.server's name)
                self._resolve(send_body=False)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?")[0]
                hub.requests.append(("GET", path, dict(self.headers)))
                parts = path.strip("/").split("/")
                if parts[0] != "api":
                    self._resolve(send_body=True)
                    return
                repo = hub.repos.get((parts[1].rstrip("s"), f"{parts[2]}/{parts[3]}"))
                found = repo.snapshot(parts[5]) if repo and len(parts) >= 6 else None
                if found is None:
                    self._reply(404, {"error": "Repository not found"}, "RepoNotFound")
                    return
                commit, files = found
                repo_id = f"{parts[2]}/{parts[3]}"
                if parts[4] == "revision":
                    self._reply(200, {"id": repo_id, "sha": commit, "private": repo.private,
                                      "siblings": [{"rfilename": p} for p in sorted(files)]})
                elif parts[4] == "tree":
                    tree = [{"type": "file", "oid": _blob_id(data), "size": len(data), "path": p}
                            for p, data in sorted(files.items())]
                    self._send(200, json.dumps(tree).encode(), {"Content-Type": "application/json"})
                else:
                    self._reply(404, {"error": f"no endpoint {path}"})

            def _resolve(self, *, send_body: bool) -> None:
                parts = self.path.split("?")[0].strip("/").split("/")
                repo = self._find(parts)
                offset = 1 if parts[0] in ("spaces", "datasets") else 0
                found = repo.snapshot(parts[offset + 3]) if repo and len(parts) > offset + 4 else None
                rel = "/".join(parts[offset + 4 :])
                if found is None or parts[offset + 2] != "resolve" or rel not in found[1]:
                    self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, send_body=send_body)
                    return
                commit, files = found
                data = files[rel]
                headers = {"X-Repo-Commit": commit, "ETag": f'"{_blob_id(data)}"',
                           "Content-Type": "application/octet-stream"}
                self._send(200, data, headers, send_body=send_body)

            def _send(self, status: int, data: bytes, headers: dict[str, str], *,
                      send_body: bool = True) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if send_body:
                    self.wfile.write(data)

            def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hub.requests.append(("PUT", self.path, dict(self.headers)))
                oid = self.path.rsplit("/", 1)[-1]
                if hashlib.sha256(body).hexdigest() != oid:
                    self._reply(400, {"error": "sha256 of the upload does not match its oid"})
                    return
                hub.lfs_objects[oid] = body
                self._reply(200, {})

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                path = self.path.split("?")[0]
                hub.requests.append(("POST", path, dict(self.headers)))
                if self.headers.get("Authorization") != f"Bearer {hub.token}":
                    self._reply(401, {"error": "Invalid credentials"})
                    return
                parts = path.strip("/").split("/")
                if path.endswith(".git/info/lfs/objects/batch"):
                    self._lfs_batch(json.loads(body))
                elif parts == ["api", "repos", "create"]:
                    self._create(json.loads(body))
                elif parts == ["api", "validate-yaml"]:
                    self._validate_yaml(json.loads(body))
                elif len(parts) >= 6 and parts[0] == "api":
                    repo = hub.repos.get((parts[1].rstrip("s"), f"{parts[2]}/{parts[3]}"))
                    if repo is None:
                        self._reply(404, {"error": "Repository not found"}, "RepoNotFound")
                        return
                    action, revision = parts[4], "/".join(parts[5:])
                    if action == "preupload":
                        self._preupload(json.loads(body))
                    elif action == "commit":
                        self._commit(repo, f"{parts[2]}/{parts[3]}", revision, body)
                    elif action == "branch":
                        repo.files.setdefault(revision, dict(repo.files["main"]))
                        self._reply(200, {})
                    else:
                        self._reply(404, {"error": f"no endpoint {path}"})
                else:
                    self._reply(404, {"error": f"no endpoint {path}"})

            def _create(self, payload: dict[str, Any]) -> None:
                repo_type = payload.get("type") or "model"
                repo_id = f"{payload['organization']}/{payload['name']}"
                if (repo_type, repo_id) in hub.repos:
                    self._reply(409, {"error": "You already created this repo", "url": repo_id})
                    return
                hub.repos[(repo_type, repo_id)] = Repo(
                    repo_type=repo_type,
                    private=payload.get("visibility") == "private" or bool(payload.get("private")),
                    sdk=payload.get("sdk"),
                )
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                self._reply(200, {"url": f"{hub.url}/{prefix}{repo_id}"})

            def _validate_yaml(self, payload: dict[str, Any]) -> None:
                text = payload.get("content", "")
                meta = None
                if text.startswith("---\n") and "\n---\n" in text[3:]:
                    meta = yaml.safe_load(text[4 : text.index("\n---\n", 3)])
                if not isinstance(meta, dict):
                    self._reply(400, {"errors": [{"message": "no YAML metadata block"}]})
                    return
                hub.cards.append(meta)
                self._reply(200, {"errors": [], "warnings": []})

            def _preupload(self, payload: dict[str, Any]) -> None:
                files = [
                    {
                        "path": f["path"],
                        "uploadMode": "lfs" if f["path"].endswith(hub.lfs_suffixes or ("\0",))
                        else "regular",
                        "shouldIgnore": False,
                    }
                    for f in payload["files"]
                ]
                self._reply(200, {"files": files})

            def _lfs_batch(self, payload: dict[str, Any]) -> None:
                objects = [
                    {
                        "oid": o["oid"],
                        "size": o["size"],
                        "authenticated": True,
                        "actions": {"upload": {"href": f"{hub.url}/lfs-upload/{o['oid']}"}},
                    }
                    for o in payload["objects"]
                ]
                self._reply(200, {"transfer": "basic", "objects": objects})

            def _commit(self, repo: Repo, repo_id: str, revision: str, body: bytes) -> None:
                files = repo.files.setdefault(revision, {})
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "file":
                        value = item["value"]
                        files[value["path"]] = base64.b64decode(value["content"])
                    elif item["key"] == "lfsFile":
                        value = item["value"]
                        if value["oid"] not in hub.lfs_objects:
                            self._reply(422, {"error": f"LFS object of {value['path']} missing"})
                            return
                        files[value["path"]] = hub.lfs_objects[value["oid"]]
                    elif item["key"] == "deletedFile":
                        files.pop(item["value"]["path"], None)
                oid = hashlib.sha1(body + str(len(repo.commits)).encode()).hexdigest()
                repo.commits.append(oid)
                repo.heads[revision] = oid
                repo.snapshots[oid] = dict(files)
                self._reply(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{oid}", "commitOid": oid})

        return Handler
