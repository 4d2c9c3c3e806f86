"""A loopback stand-in for the model Hub: the endpoints huggingface_hub 2.4 calls for
`create_repo`, `create_branch` and `upload_folder` / `create_commit`, on 127.0.0.1.

The real client talks to it over HTTP when HF_ENDPOINT names it (set that in a subprocess's
environment: the client reads it at import time). It records what arrives (repos, branches,
commits with their messages and file bytes, LFS objects by sha256) so tests can assert on it.

Protocol, as the client speaks it (see huggingface_hub/_commit_api.py, lfs.py, hf_api.py):
  POST /api/repos/create                          {"name", "organization", "visibility"?}
  GET  /api/models/{repo}[/revision/{rev}]        repo_info (after a 401/403 on create, or a no-op commit)
  GET  /api/models/{repo}/tree/{rev}              the files there (upload_folder with delete_patterns)
  POST /api/models/{repo}/branch/{branch}         create_branch
  POST /api/validate-yaml                         README.md front matter, checked before any upload
  POST /api/models/{repo}/preupload/{rev}         -> uploadMode "lfs" | "regular" per file
  POST /{repo}.git/info/lfs/objects/batch         -> an upload (and verify) href per new LFS object
  PUT  /lfs-upload/{oid}                          the bytes (a pre-signed URL on the real Hub: no auth)
  POST /lfs-verify/{repo}                         {"oid", "size"}
  POST /api/models/{repo}/commit/{rev}            NDJSON: header, file (base64), lfsFile, deleted*

Xet: huggingface_hub 2.4 picks xet on the client side alone (hf_xet importable and HF_HUB_DISABLE_XET
unset) and never asks the server, so a server cannot steer it onto LFS. Run the client with
HF_HUB_DISABLE_XET=1 (`client_env` does). The xet token endpoint answers 501 here, and every
request the stub does not implement is recorded in `unknown`, so a test sees if xet slipped in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

import yaml

REPO = r"(?P<repo>[^/]+/[^/]+)"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".pkl", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack")
LFS_THRESHOLD = 10 * 1024 * 1024  # the Hub stores bigger files in LFS whatever their name
BAD_CREDENTIALS = "Invalid credentials in Authorization header"


@dataclass
class Commit:
    oid: str
    repo: str
    revision: str
    message: str
    description: str
    files: dict[str, bytes]          # what this commit added or changed, path -> bytes
    lfs: dict[str, str]              # path -> sha256 for the files that came through LFS
    deleted: list[str]


@dataclass
class Repo:
    repo_id: str
    private: bool
    visibility: Optional[str]
    branches: dict[str, Optional[str]] = field(default_factory=lambda: {"main": None})  # name -> head commit
    trees: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})  # name -> path -> bytes


class HubStub:
    """Start with `with HubStub(token) as hub:`; `hub.url` is the endpoint."""

    def __init__(self, token: str, owners: Optional[set[str]] = None) -> None:
        self.token = token
        self.owners = owners  # namespaces the token may create repos in (None: any)
        self.repos: dict[str, Repo] = {}
        self.commits: list[Commit] = []
        self.lfs_objects: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.yaml_checked: list[str] = []
        self.lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "HubStub":
        stub = self

        class Handler(_Handler):
            hub = stub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HubStub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the stub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def client_env(self, base: Optional[dict] = None, token: Optional[str] = None) -> dict:
        """Environment for a subprocess whose huggingface_hub should talk to this stub."""
        env = dict(base or {})
        env.update(HF_ENDPOINT=self.url, HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0",
                   HF_HUB_DISABLE_TELEMETRY="1", HF_TOKEN=self.token if token is None else token)
        env.pop("TRANSFORMERS_OFFLINE", None)
        return env

    # ---- what tests read ----------------------------------------------------------------------

    def commits_to(self, repo_id: str) -> list[Commit]:
        return [c for c in self.commits if c.repo == repo_id]

    def tree(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].trees[revision])


class _Handler(BaseHTTPRequestHandler):
    hub: HubStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # ---- plumbing -----------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any = None, headers: Optional[dict] = None) -> None:
        data = json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, code: Optional[str] = None) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, {"error": message}, headers)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {self.hub.token}":
            return True
        self._error(401, BAD_CREDENTIALS)
        return False

    def _repo(self, repo_id: str) -> Optional[Repo]:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "Repository not found", "RepoNotFound")
        return repo

    def _branch(self, repo: Repo, revision: str) -> bool:
        if revision in repo.branches:
            return True
        self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return False

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        with self.hub.lock:
            self.hub.requests.append((method, path))
            for pattern, handler in ROUTES.get(method, []):
                match = re.fullmatch(pattern, path)
                if match:
                    groups = {k: unquote(v) for k, v in match.groupdict().items()}
                    return handler(self, body, **groups)
            self.hub.unknown.append((method, path))
            self._error(404 if "xet" not in path else 501, f"the stub does not implement {method} {path}")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    # ---- endpoints ----------------------------------------------------------------------------

    def create_repo(self, body: bytes) -> None:
        if not self._authorized():
            return
        payload = json.loads(body)
        repo_id = f"{payload.get('organization')}/{payload['name']}"
        if payload.get("type") not in (None, "model"):
            return self._error(400, "the stub holds model repos only")
        if repo_id in self.hub.repos:  # the real Hub names the repo in its 409, and the client reads it
            message = "You already created this model repo"
            return self._send(409, {"error": message, "url": f"{self.hub.url}/{repo_id}"},
                              {"X-Error-Message": message})
        if self.hub.owners is not None and payload.get("organization") not in self.hub.owners:
            return self._error(403, f"You don't have the rights to create a model under the namespace "
                                    f"\"{payload.get('organization')}\"")
        visibility = payload.get("visibility")
        self.hub.repos[repo_id] = Repo(repo_id, private=visibility == "private", visibility=visibility)
        self._send(200, {"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": uuid.uuid4().hex})

    def repo_info(self, body: bytes, repo: str, rev: str = "main") -> None:
        if not self._authorized():
            return
        info = self._repo(repo)
        if info is None or not self._branch(info, rev):
            return
        self._send(200, {"id": repo, "modelId": repo, "private": info.private,
                         "sha": info.branches[rev] or "0" * 40, "siblings": []})

    def list_tree(self, body: bytes, repo: str, rev: str) -> None:
        """The files of a revision (upload_folder's delete_patterns lists them); one page, recursive."""
        if not self._authorized():
            return
        info = self._repo(repo)
        if info is None or not self._branch(info, rev):
            return
        tree = info.trees[rev]
        folders = sorted({"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)})
        entries = [{"type": "directory", "path": f, "oid": "0" * 40} for f in folders]
        entries += [{"type": "file", "path": p, "size": len(data), "oid": _git_hash(data)}
                    for p, data in sorted(tree.items())]
        self._send(200, entries)

    def create_branch(self, body: bytes, repo: str, branch: str) -> None:
        if not self._authorized():
            return
        info = self._repo(repo)
        if info is None:
            return
        if branch in info.branches:
            return self._error(409, "Reference already exists")
        start = (json.loads(body or b"{}") or {}).get("startingPoint") or "main"
        if not self._branch(info, start):
            return
        info.branches[branch] = info.branches[start]
        info.trees[branch] = dict(info.trees[start])
        self._send(200, {})

    def validate_yaml(self, body: bytes) -> None:
        if not self._authorized():
            return
        content = json.loads(body)["content"]
        self.hub.yaml_checked.append(content)
        errors = _front_matter_errors(content)
        if errors:
            return self._send(400, {"errors": [{"message": e} for e in errors]})
        self._send(200, {"warnings": []})

    def preupload(self, body: bytes, repo: str, rev: str) -> None:
        if not self._authorized():
            return
        info = self._repo(repo)
        if info is None or not self._branch(info, rev):
            return
        tree = info.trees[rev]
        files = []
        for item in json.loads(body)["files"]:
            lfs = item["path"].endswith(LFS_SUFFIXES) or item["size"] > LFS_THRESHOLD \
                or b"\x00" in base64.b64decode(item["sample"])
            existing = tree.get(item["path"])
            oid = None
            if existing is not None:  # lets the client skip files that did not change
                oid = hashlib.sha256(existing).hexdigest() if lfs else _git_hash(existing)
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                          "shouldIgnore": False, "oid": oid})
        self._send(200, {"files": files, "commitOid": info.branches[rev] or "0" * 40})

    def lfs_batch(self, body: bytes, repo: str) -> None:
        if not self._authorized():
            return
        if self._repo(repo) is None:
            return
        payload = json.loads(body)
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}"},
                                    "verify": {"href": f"{self.hub.url}/lfs-verify/{repo}"}}
            objects.append(entry)
        self._send(200, {"transfer": "basic", "objects": objects})

    def lfs_upload(self, body: bytes, oid: str) -> None:
        # a pre-signed storage URL on the real Hub: it carries no Authorization header
        if hashlib.sha256(body).hexdigest() != oid:
            return self._error(400, "content does not match its sha256")
        self.hub.lfs_objects[oid] = body
        self._send(200, {})

    def lfs_verify(self, body: bytes, repo: str) -> None:
        if not self._authorized():
            return
        payload = json.loads(body)
        stored = self.hub.lfs_objects.get(payload["oid"])
        if stored is None or len(stored) != payload["size"]:
            return self._error(404, "LFS object not found")
        self._send(200, {})

    def commit(self, body: bytes, repo: str, rev: str) -> None:
        if not self._authorized():
            return
        info = self._repo(repo)
        if info is None or not self._branch(info, rev):
            return
        header: dict = {}
        files: dict[str, bytes] = {}
        lfs: dict[str, str] = {}
        deleted: list[str] = []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                data = self.hub.lfs_objects.get(value["oid"])
                if data is None:
                    return self._error(422, f"LFS object {value['oid']} was never uploaded")
                files[value["path"]] = data
                lfs[value["path"]] = value["oid"]
            elif key in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"])
            else:
                return self._error(400, f"unknown commit line {key!r}")
        if not header.get("summary"):
            return self._error(400, "a commit needs a summary")
        parent = header.get("parentCommit")
        if parent is not None and parent != info.branches[rev]:
            return self._error(412, "parent commit is not the head of the branch")
        oid = hashlib.sha1(uuid.uuid4().bytes).hexdigest()
        tree = info.trees[rev]
        for path in deleted:
            for name in [p for p in tree if p == path or p.startswith(path.rstrip("/") + "/")]:
                del tree[name]
        tree.update(files)
        info.branches[rev] = oid
        self.hub.commits.append(Commit(oid, repo, rev, header["summary"], header.get("description", ""),
                                       files, lfs, deleted))
        self._send(200, {"commitUrl": f"{self.hub.url}/{repo}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None})


def _git_hash(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


def _front_matter_errors(content: str) -> list[str]:
    """What the Hub rejects in README.md metadata (a subset: parseable, a mapping, base_model ids)."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", content, re.DOTALL)
    if not match:
        return []
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        return [f"invalid YAML: {exc}"]
    if not isinstance(meta, dict):
        return ["metadata must be a mapping"]
    errors = []
    bases = meta.get("base_model") or []
    for base in [bases] if isinstance(bases, str) else bases:
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(base)):
            errors.append(f"base_model {base!r} is not a model id")
    return errors


ROUTES = {
    "GET": [
        (rf"/api/models/{REPO}", _Handler.repo_info),
        (rf"/api/models/{REPO}/revision/(?P<rev>.+)", _Handler.repo_info),
        (rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)", _Handler.list_tree),
    ],
    "POST": [
        (r"/api/repos/create", _Handler.create_repo),
        (r"/api/validate-yaml", _Handler.validate_yaml),
        (rf"/api/models/{REPO}/branch/(?P<branch>.+)", _Handler.create_branch),
        (rf"/api/models/{REPO}/preupload/(?P<rev>.+)", _Handler.preupload),
        (rf"/api/models/{REPO}/commit/(?P<rev>.+)", _Handler.commit),
        (rf"/{REPO}\.git/info/lfs/objects/batch", _Handler.lfs_batch),
        (rf"/lfs-verify/{REPO}", _Handler.lfs_verify),
    ],
    "PUT": [
        (r"/lfs-upload/(?P<oid>[0-9a-f]{64})", _Handler.lfs_upload),
    ],
}
