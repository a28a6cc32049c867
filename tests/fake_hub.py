"""A loopback fake Hugging Face Hub that the real `HfApi` / `hf_hub_download` / `HfFileSystem` can drive.

Scope: what a dataset exporter and a remote reader need (see ../shared/reference/huggingface-hub.md
§7): whoami, repo create/info/settings/delete, preupload (always answers upload mode "regular", so
neither LFS nor Xet is involved), NDJSON commits (inline base64 adds, deletes, `parentCommit`),
tree / paths-info listings, resolve (GET and HEAD, with HTTP Range), validate-yaml, collections.

State lives in memory; every request and every commit is recorded so tests can assert on them.
Errors follow the Hub's conventions (JSON `{"error"}` body, `X-Error-Code` header) because the
client classifies errors by those headers. Inject failures with `fail_next(kind, status)`.

    with FakeHub() as hub:
        api = HfApi(endpoint=hub.url, token=hub.token)
        api.create_repo("tester/demo", repo_type="dataset")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

DEFAULT_TOKEN = "hf_test_fake_hub_token"
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
REPO_TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}
# Resolve URLs: datasets/<repo>, spaces/<repo>, or the bare repo id for models.
RESOLVE_PREFIXES = {"datasets": "dataset", "spaces": "space"}


def git_blob_oid(data: bytes) -> str:
    """The git blob id the Hub reports for a regular file (what preupload compares against)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class HubError(Exception):
    """Raised inside a handler; becomes an error response with the Hub's headers."""

    def __init__(self, status: int, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


@dataclass
class Commit:
    oid: str
    repo_id: str
    repo_type: str
    summary: str
    description: str
    parent: str | None
    added: list[str]
    deleted: list[str]
    files: dict[str, bytes]  # the full tree after this commit


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    history: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.history[-1]

    def at(self, revision: str) -> Commit:
        if revision in ("main", "refs/heads/main"):
            return self.head
        for commit in self.history:
            if commit.oid == revision:
                return commit
        raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")


@dataclass
class RecordedRequest:
    kind: str
    method: str
    path: str
    query: dict[str, list[str]]
    status: int = 0
    repo_id: str | None = None
    range: str | None = None  # the Range header, for asserting ranged reads


@dataclass
class Fault:
    kind: str
    status: int
    times: int
    headers: dict[str, str]
    message: str
    after_apply: bool  # the operation happens, only the response is lost (e.g. a gateway timeout)
    repo_id: str | None  # only requests about this repo (None: any)


# Default error headers per status, as the client expects them (reference §7.1).
FAULT_HEADERS: dict[int, dict[str, str]] = {
    401: {"X-Error-Message": "Invalid credentials in Authorization header"},
    403: {"X-Error-Message": "You don't have the rights to perform this operation"},
    404: {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
    429: {
        "Retry-After": "0",
        "RateLimit": '"api";r=0;t=0',
        "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
    },
}

WRITE_KINDS = {
    "create_repo",
    "delete_repo",
    "update_settings",
    "commit",
    "collection_create",
    "collection_add_item",
    "collection_delete",
}


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (a test that already has its answer) is not an error worth a
        # traceback on stderr, where CLI tests read the command's own one-line messages.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeHub:
    """In-memory Hub on 127.0.0.1:<free port>. `url` is the endpoint to give HfApi."""

    def __init__(self, *, token: str = DEFAULT_TOKEN, user: str = "tester", orgs: tuple[str, ...] = ()):
        self.token = token
        self.user = user
        self.orgs = tuple(orgs)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.collections: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.commits: list[Commit] = []
        self.validated_yaml: list[str] = []
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._counter = 0
        self.page_size = 50  # listings are paginated like the Hub's (Link header)
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeHub:
        handler = type("BoundHandler", (_Handler,), {"hub": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test helpers ------------------------------------------------------------------------------

    def fail_next(
        self,
        kind: str,
        status: int = 500,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        message: str | None = None,
        after_apply: bool = False,
        repo_id: str | None = None,
    ) -> None:
        """Answer the next `times` requests of `kind` (see `ROUTES`), about `repo_id` if given, with `status`.

        `after_apply=True` performs the operation first and then fails the response, the way a
        proxy timeout loses the answer to a commit that did land.
        """
        with self._lock:
            self._faults.append(
                Fault(
                    kind,
                    status,
                    times,
                    {**FAULT_HEADERS.get(status, {}), **(headers or {})},
                    message or f"injected {status} on {kind}",
                    after_apply,
                    repo_id,
                )
            )

    def create_repo(self, repo_id: str, *, repo_type: str = "dataset", private: bool = False) -> Repo:
        """Create a repo directly (as if made on the website)."""
        with self._lock:
            return self._create_repo(repo_id, repo_type, private)

    def put_file(self, repo_id: str, path: str, data: bytes | str, *, repo_type: str = "dataset") -> Commit:
        """Commit one file directly (as if a user edited it on the website)."""
        data = data.encode() if isinstance(data, str) else data
        with self._lock:
            repo = self._repo(repo_type, repo_id)
            return self._apply_commit(repo, f"Update {path}", "", None, {path: data}, [])

    def delete_file(self, repo_id: str, path: str, *, repo_type: str = "dataset") -> Commit:
        """Delete one file directly (as if a user removed it on the website)."""
        with self._lock:
            repo = self._repo(repo_type, repo_id)
            return self._apply_commit(repo, f"Delete {path}", "", None, {}, [path])

    def files(self, repo_id: str, *, repo_type: str = "dataset") -> dict[str, bytes]:
        """The files at the head of a repo."""
        with self._lock:
            return dict(self._repo(repo_type, repo_id).head.files)

    def commits_to(self, repo_id: str) -> list[Commit]:
        """Commits made through the API (repo creation's initial commit is not one)."""
        with self._lock:
            return [commit for commit in self.commits if commit.repo_id == repo_id]

    def requests_of(self, kind: str) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self.requests if request.kind == kind]

    def write_requests(self) -> list[RecordedRequest]:
        """Every request that would change Hub state (whether or not it succeeded)."""
        with self._lock:
            return [request for request in self.requests if request.kind in WRITE_KINDS]

    def collections_of(self, owner: str) -> list[dict[str, Any]]:
        with self._lock:
            return [c for c in self.collections.values() if c["owner"]["name"] == owner]

    # -- state -------------------------------------------------------------------------------------

    def _new_oid(self) -> str:
        self._counter += 1
        return hashlib.sha1(f"fake-hub-{self._counter}-{time.time_ns()}".encode()).hexdigest()

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", code="RepoNotFound")
        return repo

    def _create_repo(self, repo_id: str, repo_type: str, private: bool) -> Repo:
        if (repo_type, repo_id) in self.repos:
            raise HubError(
                409,
                "You already created this dataset repo",
                extra={"url": self._repo_url(repo_type, repo_id)},
            )
        repo = Repo(repo_id, repo_type, private)
        oid = self._new_oid()
        repo.history.append(
            Commit(
                oid,
                repo_id,
                repo_type,
                "initial commit",
                "",
                None,
                [".gitattributes"],
                [],
                {".gitattributes": GITATTRIBUTES},
            )
        )
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def _apply_commit(
        self,
        repo: Repo,
        summary: str,
        description: str,
        parent: str | None,
        adds: dict[str, bytes],
        deletes: list[str],
    ) -> Commit:
        files = dict(repo.head.files)
        deleted: list[str] = []
        for path in deletes:
            if path.endswith("/"):
                matching = [name for name in files if name.startswith(path)]
                if not matching:
                    raise HubError(
                        404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound"
                    )
            elif path in files:
                matching = [path]
            else:
                raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
            for name in matching:
                del files[name]
            deleted += matching
        files.update(adds)
        commit = Commit(
            self._new_oid(),
            repo.repo_id,
            repo.repo_type,
            summary,
            description,
            parent,
            sorted(adds),
            deleted,
            files,
        )
        repo.history.append(commit)
        self.commits.append(commit)
        return commit

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        return f"{self.url}/{prefix}{repo_id}"

    def _collection_json(self, collection: dict[str, Any]) -> dict[str, Any]:
        return {**collection, "items": [dict(item) for item in collection["items"]]}

    def _can_write(self, namespace: str) -> bool:
        return namespace == self.user or namespace in self.orgs

    def _take_fault(self, kind: str, repo_id: str | None) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.repo_id in (None, repo_id) and fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None


# Routes: (method, regex on the URL path, kind). The first match wins.
_REPO = r"(?P<t>datasets|models|spaces)/(?P<repo>[^/]+/[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(pattern), kind)
    for method, pattern, kind in [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("POST", r"/api/repos/create", "create_repo"),
        ("DELETE", r"/api/repos/delete", "delete_repo"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("PUT", rf"/api/{_REPO}/settings", "update_settings"),
        ("POST", rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", rf"/api/{_REPO}/commit/(?P<rev>[^/]+)", "commit"),
        ("GET", rf"/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        ("POST", rf"/api/{_REPO}/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("GET", rf"/api/{_REPO}(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
        ("GET", r"/api/collections", "collections_list"),
        ("POST", r"/api/collections", "collection_create"),
        ("POST", r"/api/collections/(?P<slug>[^/]+/[^/]+)/items", "collection_add_item"),
        ("GET", r"/api/collections/(?P<slug>[^/]+/[^/]+)", "collection_get"),
        ("DELETE", r"/api/collections/(?P<slug>[^/]+/[^/]+)", "collection_delete"),
        (
            "GET",
            r"/(?:(?P<t>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
            "resolve",
        ),
        (
            "HEAD",
            r"/(?:(?P<t>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
            "resolve",
        ),
    ]
]

READ_KINDS_ALLOWED_ANONYMOUSLY = {
    "repo_info",
    "tree",
    "paths_info",
    "resolve",
    "collections_list",
    "collection_get",
}


@dataclass
class Reply:
    status: int = 200
    body: bytes | Any = None  # bytes are sent as-is, anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses connections, like on the real Hub
    # Headers and body go out in separate writes; without TCP_NODELAY each keep-alive response
    # waits ~40 ms on Nagle + delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # -- plumbing ----------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        parsed = urllib.parse.urlsplit(self.path)
        path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
        body = self._read_body()
        kind, params = "unknown", {}
        for route_method, pattern, route_kind in ROUTES:
            match = pattern.fullmatch(path) if route_method == method else None
            if match:
                kind = route_kind
                params = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items() if v is not None}
                break
        record = RecordedRequest(
            kind, method, path, query, repo_id=params.get("repo"), range=self.headers.get("Range")
        )
        with hub._lock:
            hub.requests.append(record)
        try:
            if kind == "unknown":
                raise HubError(404, f"fake hub: no route for {method} {path}")
            self._authorize(kind, params)
            fault = hub._take_fault(kind, params.get("repo"))
            if fault and not fault.after_apply:
                raise HubError(fault.status, fault.message, extra={"headers": fault.headers})
            reply = getattr(self, f"_{kind}")(params, query, body)
            if fault:
                raise HubError(fault.status, fault.message, extra={"headers": fault.headers})
        except HubError as error:
            headers = dict(error.extra.pop("headers", {}))
            if error.code:
                headers["X-Error-Code"] = error.code
            headers.setdefault("X-Error-Message", error.message)
            reply = Reply(error.status, {"error": error.message, **error.extra}, headers)
        record.status = reply.status
        self._send(method, reply)

    def _send(self, method: str, reply: Reply) -> None:
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _authorize(self, kind: str, params: dict[str, str]) -> None:
        hub = self.hub
        auth = self.headers.get("Authorization", "")
        if auth:
            if auth != f"Bearer {hub.token}":
                raise HubError(401, "Invalid credentials in Authorization header")
            return
        if kind in READ_KINDS_ALLOWED_ANONYMOUSLY and "repo" in params:
            repo = hub.repos.get((self._repo_type(params), params["repo"]))
            if repo is not None and not repo.private:
                return
            # The Hub hides private repos from anonymous callers: 401 + RepoNotFound.
            raise HubError(401, "Repository not found", code="RepoNotFound")
        if kind in {"collections_list", "collection_get"}:
            return
        raise HubError(401, "You must be authenticated to access this resource")

    @staticmethod
    def _repo_type(params: dict[str, str]) -> str:
        return REPO_TYPES.get(params.get("t") or "models", "model")

    def _repo(self, params: dict[str, str]) -> Repo:
        return self.hub._repo(self._repo_type(params), params["repo"])

    @staticmethod
    def _json(body: bytes) -> Any:
        return json.loads(body or b"{}")

    def _paged(self, items: list[Any], query: dict[str, list[str]]) -> Reply:
        """One page of a listing, with a `Link: <…>; rel="next"` header the client follows."""
        offset = int(query.get("cursor", ["0"])[0])
        size = self.hub.page_size
        headers = {}
        if offset + size < len(items):
            next_query = {key: values[0] for key, values in query.items()} | {"cursor": str(offset + size)}
            path = urllib.parse.urlsplit(self.path).path
            headers["Link"] = f'<{self.hub.url}{path}?{urllib.parse.urlencode(next_query)}>; rel="next"'
        return Reply(body=items[offset : offset + size], headers=headers)

    # -- endpoints ---------------------------------------------------------------------------------

    def _whoami(self, params: dict, query: dict, body: bytes) -> Reply:
        hub = self.hub
        return Reply(
            body={
                "type": "user",
                "name": hub.user,
                "orgs": [{"name": org, "type": "org"} for org in hub.orgs],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def _create_repo(self, params: dict, query: dict, body: bytes) -> Reply:
        hub = self.hub
        payload = self._json(body)
        namespace = payload.get("organization") or hub.user
        repo_type = payload.get("type") or "model"
        if not hub._can_write(namespace):
            raise HubError(
                403, f"You don't have the rights to create a {repo_type} under the namespace {namespace}"
            )
        private = payload.get("visibility", "private" if payload.get("private") else "public") == "private"
        repo_id = f"{namespace}/{payload['name']}"
        with hub._lock:
            hub._create_repo(repo_id, repo_type, private)
        return Reply(body={"url": hub._repo_url(repo_type, repo_id), "name": repo_id})

    def _delete_repo(self, params: dict, query: dict, body: bytes) -> Reply:
        hub = self.hub
        payload = self._json(body)
        repo_id = f"{payload.get('organization') or hub.user}/{payload['name']}"
        with hub._lock:
            hub._repo(payload.get("type") or "model", repo_id)
            del hub.repos[(payload.get("type") or "model", repo_id)]
        return Reply(body={})

    def _update_settings(self, params: dict, query: dict, body: bytes) -> Reply:
        payload = self._json(body)
        with self.hub._lock:
            repo = self._repo(params)
            if "private" in payload:
                repo.private = bool(payload["private"])
            if "visibility" in payload:
                repo.private = payload["visibility"] == "private"
        return Reply(body={})

    def _validate_yaml(self, params: dict, query: dict, body: bytes) -> Reply:
        content = self._json(body).get("content", "")
        self.hub.validated_yaml.append(content)
        match = re.match(r"^---\n(.*?)\n---\s*(\n|$)", content, re.S)
        if match:
            try:
                yaml.safe_load(match.group(1))
            except yaml.YAMLError as error:
                raise HubError(400, f"Invalid metadata in README.md: {error}") from error
        return Reply(body={"errors": [], "warnings": []})

    def _repo_info(self, params: dict, query: dict, body: bytes) -> Reply:
        with self.hub._lock:
            repo = self._repo(params)
            commit = repo.at(params.get("rev", "main"))
            return Reply(
                body={
                    "id": repo.repo_id,
                    "_id": hashlib.md5(repo.repo_id.encode()).hexdigest()[:24],
                    "author": repo.repo_id.split("/")[0],
                    "sha": commit.oid,
                    "private": repo.private,
                    "gated": False,
                    "disabled": False,
                    "downloads": 0,
                    "likes": 0,
                    "tags": [],
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "lastModified": "2026-01-01T00:00:00.000Z",
                    "siblings": [{"rfilename": name} for name in sorted(commit.files)],
                }
            )

    def _preupload(self, params: dict, query: dict, body: bytes) -> Reply:
        with self.hub._lock:
            files = self._repo(params).at(params["rev"]).files
        answers = [
            {
                "path": entry["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_oid(files[entry["path"]]) if entry["path"] in files else None,
            }
            for entry in self._json(body).get("files", [])
        ]
        return Reply(body={"files": answers, "commitOid": None})

    def _commit(self, params: dict, query: dict, body: bytes) -> Reply:
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        adds: dict[str, bytes] = {}
        deletes: list[str] = []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                adds[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deletes.append(value["path"])
            elif key == "deletedFolder":
                deletes.append(value["path"].rstrip("/") + "/")
            else:
                raise HubError(
                    400, f"fake hub: unsupported commit operation {key!r} (it only serves regular uploads)"
                )
        with self.hub._lock:
            repo = self._repo(params)
            parent = header.get("parentCommit")
            if parent and parent != repo.head.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            commit = self.hub._apply_commit(
                repo, header.get("summary", ""), header.get("description", ""), parent, adds, deletes
            )
        url = f"{self.hub._repo_url(repo.repo_type, repo.repo_id)}/commit/{commit.oid}"
        return Reply(body={"commitUrl": url, "commitOid": commit.oid, "pullRequestUrl": None})

    @staticmethod
    def _entries(files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict[str, Any]]:
        """Tree entries under `prefix` (files, plus the directories implied by their paths)."""
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        entries: dict[str, dict[str, Any]] = {}
        for name, data in sorted(files.items()):
            if not name.startswith(base):
                continue
            parts = name[len(base) :].split("/")
            for depth in range(1, len(parts)):
                folder = base + "/".join(parts[:depth])
                entries.setdefault(
                    folder,
                    {"type": "directory", "path": folder, "oid": git_blob_oid(folder.encode()), "size": 0},
                )
                if not recursive:
                    break
            if recursive or len(parts) == 1:
                entries[name] = {"type": "file", "path": name, "size": len(data), "oid": git_blob_oid(data)}
        return list(entries.values())

    def _tree(self, params: dict, query: dict, body: bytes) -> Reply:
        with self.hub._lock:
            files = self._repo(params).at(params["rev"]).files
        prefix = params.get("path", "")
        if prefix and not any(name.startswith(prefix.rstrip("/") + "/") for name in files):
            raise HubError(404, f"Entry not found: {prefix}", code="EntryNotFound")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        return self._paged(self._entries(files, prefix, recursive), query)

    def _paths_info(self, params: dict, query: dict, body: bytes) -> Reply:
        form = urllib.parse.parse_qs(body.decode())
        with self.hub._lock:
            files = self._repo(params).at(params["rev"]).files
        wanted = form.get("paths", [])
        entries = [entry for entry in self._entries(files, "", True) if entry["path"] in wanted]
        return Reply(body=entries)

    def _resolve(self, params: dict, query: dict, body: bytes) -> Reply:
        with self.hub._lock:
            repo = self.hub._repo(RESOLVE_PREFIXES.get(params.get("t", ""), "model"), params["repo"])
            commit = repo.at(params["rev"])
        data = commit.files.get(params["path"])
        if data is None:
            raise HubError(404, f"Entry not found: {params['path']}", code="EntryNotFound")
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_oid(data)}"',
            "Accept-Ranges": "bytes",
        }
        status, start, end = _parse_range(self.headers.get("Range"), len(data))
        if status == 416:
            return Reply(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        return Reply(status, data[start:end], headers)

    # -- collections -------------------------------------------------------------------------------

    def _collections_list(self, params: dict, query: dict, body: bytes) -> Reply:
        owner, text, item = (query.get(key, [None])[0] for key in ("owner", "q", "item"))
        limit = int(query.get("limit", ["0"])[0] or 0)
        authed = bool(self.headers.get("Authorization"))
        with self.hub._lock:
            found = [
                self.hub._collection_json(c)
                for c in self.hub.collections.values()
                if (owner is None or c["owner"]["name"] == owner)
                and (text is None or text.lower() in c["title"].lower())
                and (item is None or any(i["id"] == item.split("/", 1)[-1] for i in c["items"]))
                and (authed or not c["private"])
            ]
        # Like the Hub: listings carry at most 4 items per collection (get_collection has them all).
        found = [{k: v for k, v in c.items() if k != "position"} | {"items": c["items"][:4]} for c in found]
        return self._paged(found[:limit] if limit else found, query)

    def _collection_create(self, params: dict, query: dict, body: bytes) -> Reply:
        hub = self.hub
        payload = self._json(body)
        namespace, title = payload.get("namespace") or hub.user, payload["title"]
        if not hub._can_write(namespace):
            raise HubError(403, f"You don't have the rights to create a collection under {namespace}")
        with hub._lock:
            for existing in hub.collections.values():
                if existing["owner"]["name"] == namespace and existing["title"] == title:
                    raise HubError(409, "Collection already exists", extra={"slug": existing["slug"]})
            slug = f"{namespace}/{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}-{hub._new_oid()[:24]}"
            collection = {
                "slug": slug,
                "title": title,
                "description": payload.get("description"),
                "owner": {"name": namespace, "type": "org" if namespace in hub.orgs else "user"},
                "items": [],
                "lastUpdated": "2026-01-01T00:00:00.000Z",
                "position": len(hub.collections),
                "private": bool(payload.get("private", False)),
                "theme": "blue",
                "upvotes": 0,
            }
            hub.collections[slug] = collection
            return Reply(body=hub._collection_json(collection))

    def _collection(self, slug: str) -> dict[str, Any]:
        collection = self.hub.collections.get(slug)
        if collection is None:
            raise HubError(404, f"Collection not found: {slug}")
        return collection

    def _collection_get(self, params: dict, query: dict, body: bytes) -> Reply:
        with self.hub._lock:
            collection = self._collection(params["slug"])
            if collection["private"] and not self.headers.get("Authorization"):
                raise HubError(404, f"Collection not found: {params['slug']}")
            return Reply(body=self.hub._collection_json(collection))

    def _collection_add_item(self, params: dict, query: dict, body: bytes) -> Reply:
        payload = self._json(body)
        item = payload["item"]
        with self.hub._lock:
            collection = self._collection(params["slug"])
            if any(i["id"] == item["id"] and i["type"] == item["type"] for i in collection["items"]):
                raise HubError(409, "Item already in collection")
            entry: dict[str, Any] = {
                "_id": self.hub._new_oid()[:24],
                "id": item["id"],
                "type": item["type"],
                "position": len(collection["items"]),
            }
            if payload.get("note"):
                entry["note"] = {"text": payload["note"], "html": payload["note"]}
            collection["items"].append(entry)
            return Reply(body=self.hub._collection_json(collection))

    def _collection_delete(self, params: dict, query: dict, body: bytes) -> Reply:
        with self.hub._lock:
            self._collection(params["slug"])
            del self.hub.collections[params["slug"]]
        return Reply(body={})


def _parse_range(header: str | None, size: int) -> tuple[int, int, int]:
    """(status, start, end-exclusive) for one `bytes=` range; multi-ranges are answered whole (200)."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or not any(match.groups()):
        return 200, 0, size
    first, last = match.groups()
    if first == "":  # suffix range: the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        return 416, 0, 0
    return 206, start, end


def isolate_hf_home(monkeypatch: Any, home: Any) -> None:
    """Point huggingface_hub's home (token file, cache) at `home` and forget any ambient token, so
    a test can never read or write the real ~/.cache/huggingface. `monkeypatch` is pytest's."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))


def use_fake_hub(monkeypatch: Any, hub: FakeHub, home: Any, *, token: str | None = None) -> None:
    """Isolate HF_HOME, then make `hub` the endpoint (`HF_ENDPOINT`) and log in with `HF_TOKEN`
    (`token=None` → the hub's valid token; pass "" for no token at all)."""
    isolate_hf_home(monkeypatch, home)
    # Only the variable: huggingface_hub read it at import, and its resolve-URL template still
    # points at huggingface.co, which it rewrites only for an explicit `endpoint=`.
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    if token != "":
        monkeypatch.setenv("HF_TOKEN", hub.token if token is None else token)
