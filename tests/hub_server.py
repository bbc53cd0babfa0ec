"""A small Hugging Face Hub API server for the test suite (a TEST FIXTURE, not part of the package).

Nothing installable implements the upload side of the Hub API (see ../shared/docs/hub-api-notes.md), so
the tests run this stdlib-only server on 127.0.0.1 and point the *unmodified* ``huggingface_hub`` /
``hf_xet`` / ``transformers`` clients at it through ``HF_ENDPOINT``. It implements just enough of the real
protocol for them: whoami, repo create / delete (public or private), preupload, the LFS batch API, the Xet
CAS (upload of xorbs and shards, v1 reconstruction), ndjson commits, info / tree / paths-info listings,
refs and commit history, branches, and ``resolve`` with the headers the client reads (``ETag``,
``X-Repo-Commit``, ``X-Linked-Etag`` / ``X-Linked-Size`` on the redirect, ``X-Xet-Hash`` + the xet-auth
``Link``).

Two origins, as on huggingface.co: the *hub* (API, resolve) and the *cdn* (LFS blobs, Xet CAS, xorbs).
The resolve redirect for large files must point at a foreign host, otherwise the client follows it and
loses the ``X-Linked-*`` headers.

Auth: ``Authorization: Bearer <token>`` with a token from ``HubServer.tokens``. Writing needs a valid token;
reading a private repo without one answers 401 (``RepoNotFound``), as the real Hub does. The server never
logs request headers, so tokens do not leak into test output.

Storage is in memory: each repo is a chain of commits, each commit a flat ``{path: Entry}`` map, plus
branch refs. File bytes live in a dict keyed by sha256; Xet files are kept as their reconstruction terms.

Usage::

    server = HubServer(tokens={"hf_test": "user"}).start()
    os.environ["HF_ENDPOINT"] = server.url     # before huggingface_hub is imported
    ...
    server.stop()
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".npz", ".gguf")
LFS_THRESHOLD = 10 * 1024 * 1024  # bytes; the real Hub also uses 10 MB
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a regular file, which the client compares against its own."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def xet_hex(raw: bytes) -> str:
    """Xet prints a 32-byte hash as four little-endian u64 words, each in big-endian hex."""
    return "".join(raw[i : i + 8][::-1].hex() for i in range(0, 32, 8))


@dataclass
class Entry:
    """One file in a commit: its size, content sha256 and git oid; LFS/Xet files also record how they are stored."""

    size: int
    sha256: str
    oid: str  # git blob sha1 of the content (regular) or of the LFS pointer
    lfs: bool = False
    xet_hash: str | None = None


@dataclass
class Commit:
    oid: str
    parent: str | None
    files: dict[str, Entry]
    title: str
    message: str
    date: str


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "main" or "refs/pr/1" -> commit oid
    pr_count: int = 0


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubServer:
    """The hub and cdn listeners plus the shared in-memory state. ``start()`` returns ``self``."""

    def __init__(self, tokens: dict[str, str] | None = None):
        self.tokens = dict(tokens or {"hf_test_token": "user"})
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes (regular + LFS)
        self.xorbs: dict[str, bytes] = {}  # xorb hash -> serialised xorb
        self.xet_files: dict[str, list[tuple[str, int, int, int]]] = {}  # file hash -> [(xorb, start, end, bytes)]
        self.sha_to_xet: dict[str, str] = {}  # sha256 -> xet file hash (from the shard's metadata record)
        self.xet_tokens: set[str] = set()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status): for assertions, never headers
        self.lock = threading.RLock()
        self._counter = 0
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, "hub"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, "cdn"))
        self.hub.daemon_threads = self.cdn.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.hub.server_address[1]}"
        # another host name, as the real Hub's CDN has: huggingface_hub before 2.x compares hosts alone to decide
        # whether a redirect stays on the Hub (and keeps its headers, X-Repo-Commit among them)
        self.cdn_url = f"http://localhost:{self.cdn.server_address[1]}"

    def start(self) -> HubServer:
        for srv in (self.hub, self.cdn):
            threading.Thread(target=srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for srv in (self.hub, self.cdn):
            srv.shutdown()
            srv.server_close()

    # ----------------------------------------------------------------------------------------------- repos
    def _new_oid(self, seed: str) -> str:
        self._counter += 1
        return hashlib.sha1(f"{seed}-{self._counter}-{time.time_ns()}".encode()).hexdigest()

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, private)
        sha = hashlib.sha256(GITATTRIBUTES).hexdigest()
        gitattributes = Entry(len(GITATTRIBUTES), sha, git_blob_sha1(GITATTRIBUTES))
        self.blobs[gitattributes.sha256] = GITATTRIBUTES
        oid = self._new_oid(repo_id)
        repo.commits[oid] = Commit(oid, None, {".gitattributes": gitattributes}, "initial commit", "", _now())
        repo.refs["main"] = oid
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def resolve_revision(self, repo: Repo, revision: str) -> Commit:
        revision = unquote(revision)
        oid = repo.refs.get(revision) or repo.refs.get(revision.removeprefix("refs/heads/"))
        if oid is None and revision in repo.commits:
            oid = revision
        if oid is None:
            matches = [c for c in repo.commits if len(revision) >= 7 and c.startswith(revision)]
            oid = matches[0] if len(matches) == 1 else None
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[oid]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


# --------------------------------------------------------------------------------------------------- xet
def parse_shard(data: bytes) -> list[tuple[str, str | None, list[tuple[str, int, int, int]]]]:
    """The file section of an MDB shard: ``[(file_hash, sha256 or None, [(xorb, chunk_start, chunk_end, bytes)])]``.

    48-byte records after a 48-byte header. A file is a header record (hash, flags, entry count), its
    entries (xorb hash, flags, unpacked bytes, chunk range), optional verification records (flag bit 31) and
    an optional metadata-ext record holding the sha256 (flag bit 30). A record of all 0xFF ends the section.
    """
    files, pos = [], 48
    while pos + 48 <= len(data):
        record = data[pos : pos + 48]
        if record[:32] == b"\xff" * 32:
            break
        flags, count = struct.unpack_from("<II", record, 32)
        pos += 48
        entries = []
        for _ in range(count):
            cas, _flags, size, start, end = struct.unpack_from("<32sIIII", data, pos)
            entries.append((xet_hex(cas), start, end, size))
            pos += 48
        if flags & (1 << 31):
            pos += 48 * count
        sha = None
        if flags & (1 << 30):
            sha = data[pos : pos + 32]
            pos += 48
        files.append((xet_hex(record[:32]), sha, entries))
    return files


def xorb_chunk_offsets(xorb: bytes) -> list[tuple[int, int, int]]:
    """``[(byte offset, compression scheme, uncompressed size)]`` per chunk, walking the 8-byte chunk headers."""
    chunks, pos = [], 0
    while pos + 8 <= len(xorb) and xorb[pos : pos + 7] != b"XETBLOB":
        comp_len = int.from_bytes(xorb[pos + 1 : pos + 4], "little")
        scheme = xorb[pos + 4]
        raw_len = int.from_bytes(xorb[pos + 5 : pos + 8], "little")
        chunks.append((pos, scheme, raw_len))
        pos += 8 + comp_len
    chunks.append((pos, -1, 0))  # end marker: where the chunk data stops
    return chunks


def decode_chunk(xorb: bytes, offset: int, next_offset: int, scheme: int) -> bytes:
    """Bytes of one chunk (for a client with Xet off reading Xet-uploaded content). LZ4 needs the ``lz4`` package."""
    payload = xorb[offset + 8 : next_offset]
    if scheme == 0:
        return payload
    try:
        import lz4.frame
    except ImportError as err:
        raise HubError(501, "serving Xet-compressed content to a non-Xet client needs the lz4 package") from err
    raw = lz4.frame.decompress(payload)
    if scheme == 2:  # byte grouping 4: regroup [b0 b4 b8.. | b1 b5 ..] back into order
        n, groups, out, start = len(raw), [], bytearray(len(raw)), 0
        for g in range(4):
            size = n // 4 + (1 if g < n % 4 else 0)
            groups.append(raw[start : start + size])
            start += size
        for g in range(4):
            out[g::4] = groups[g]
        raw = bytes(out)
    return raw


# --------------------------------------------------------------------------------------------------- http
def _make_handler(server: HubServer, origin: str):
    class Handler(_Handler):
        hub = server
        kind = origin

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: HubServer
    kind: str

    def log_message(self, *args):  # silence the default stderr log (it would print every request)
        pass

    # ---- plumbing
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes | dict | list = b"", headers: dict | None = None, head=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and self.command != "HEAD":
            self.wfile.write(body)
        self.hub.requests.append((self.command, self.path.split("?")[0], status))

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        token = auth[7:].strip()
        if token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def _dispatch(self):
        try:
            split = urlsplit(self.path)
            self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
            route = self._route_hub if self.kind == "hub" else self._route_cdn
            route(split.path)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            headers.update(getattr(err, "extra_headers", {}))
            self._send(err.status, {"error": err.message}, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _dispatch

    # ---- repo access
    def _repo(self, repo_type: str, repo_id: str, write=False) -> Repo:
        user = self._user()
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user != repo_id.split("/")[0]):
            status = 401 if user is None else 404
            raise HubError(status, "Repository not found", "RepoNotFound")
        if write and user != repo_id.split("/")[0]:
            raise HubError(403, "You don't have the rights to write to this repository")
        return repo

    # ---- hub routes
    def _route_hub(self, path: str):
        m, method = None, self.command
        if path == "/api/whoami-v2":
            user = self._user()
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            auth = {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}
            return self._send(200, {"type": "user", "name": user, "fullname": user, "orgs": [], "auth": auth})
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo()
        if path == "/api/repos/delete" and method == "DELETE":
            body = json.loads(self._body() or b"{}")
            repo_id = f"{body.get('organization') or self._user()}/{body['name']}"
            self.hub.repos.pop((body.get("type") or "model", repo_id), None)
            return self._send(200, {})
        if path == "/api/validate-yaml":
            self._body()
            return self._send(200, {"errors": [], "warnings": []})
        if m := re.fullmatch(r"/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?", path):
            return self._route_api(REPO_TYPES[m[1]], unquote(m[2]), m[3] or "")
        if m := re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", path):
            repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(m[1] or "", "model")
            return self._lfs_batch(repo_type, m[2])
        if m := re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(m[1] or "", "model")
            return self._resolve(repo_type, unquote(m[2]), m[3], unquote(m[4]))
        if re.fullmatch(r"/api/(models|datasets|spaces)/[^/]+", path) or \
                re.fullmatch(r"/(datasets/|spaces/)?[^/]+/resolve/[^/]+/.+", path):
            # A repo id without a namespace: create_repo always adds one here, so none exists; the real Hub answers
            # an unknown bare name with 404 RepoNotFound (a client then tells "no such repo" from "no such route").
            raise HubError(404, "Repository not found", "RepoNotFound")
        raise HubError(404, f"no route {method} {path}")

    def _create_repo(self):
        user = self._user()
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        body = json.loads(self._body() or b"{}")
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or user}/{body['name']}"
        url = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                return self._send(409, {"error": "You already created this repo", "url": url})
            private = bool(body.get("private")) or body.get("visibility") == "private"
            self.hub.create_repo(repo_type, repo_id, private)
        return self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def _route_api(self, repo_type: str, repo_id: str, rest: str):
        parts = rest.split("/", 1) if rest else [""]
        action, arg = parts[0], (parts[1] if len(parts) > 1 else "")
        write = action == "xet-write-token" or (action in ("preupload", "commit", "branch") and self.command != "GET")
        repo = self._repo(repo_type, repo_id, write=write)
        if action in ("", "revision"):
            return self._info(repo, arg or "main")
        if action == "preupload":
            return self._preupload(repo, arg)
        if action == "commit":
            return self._commit(repo, arg)
        if action == "tree":
            rev, _, sub = arg.partition("/")
            return self._tree(repo, rev, unquote(sub))
        if action == "paths-info":
            return self._paths_info(repo, arg)
        if action == "refs":
            branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o}
                        for n, o in repo.refs.items() if not n.startswith("refs/")]
            prs = [{"name": n, "ref": n, "targetCommit": o} for n, o in repo.refs.items() if n.startswith("refs/pr/")]
            return self._send(200, {"branches": branches, "tags": [], "converts": [], "pullRequests": prs})
        if action == "commits":
            return self._commits(repo, arg or "main")
        if action == "branch":
            body = json.loads(self._body() or b"{}")
            start = self.hub.resolve_revision(repo, body.get("startingPoint") or "main")
            if self.command == "DELETE":
                repo.refs.pop(unquote(arg), None)
            elif unquote(arg) in repo.refs:  # as the real Hub: an existing branch is not moved (exist_ok sees 409)
                return self._send(409, {"error": "Reference already exists"})
            else:
                repo.refs[unquote(arg)] = start.oid
            return self._send(200, {})
        if action in ("xet-write-token", "xet-read-token"):
            token = "xet-" + hashlib.sha256(f"{time.time_ns()}{repo_id}".encode()).hexdigest()[:32]
            self.hub.xet_tokens.add(token)
            exp = int(time.time()) + 3600
            headers = {"X-Xet-Cas-Url": self.hub.cdn_url, "X-Xet-Access-Token": token, "X-Xet-Token-Expiration": exp}
            return self._send(200, {"accessToken": token, "exp": exp, "casUrl": self.hub.cdn_url}, headers)
        raise HubError(404, f"no route {self.command} /api/.../{rest}")

    def _entry_json(self, path: str, entry: Entry) -> dict:
        item = {"type": "file", "path": path, "size": entry.size, "oid": entry.oid}
        if entry.lfs:
            pointer = lfs_pointer(entry.sha256, entry.size)
            item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": len(pointer)}
        if entry.xet_hash:
            item["xetHash"] = entry.xet_hash
        return item

    def _info(self, repo: Repo, rev: str):
        commit = self.hub.resolve_revision(repo, rev)
        want_blobs = self.query.get("blobs") in ("1", "true", "True")
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sib = {"rfilename": path}
            if want_blobs:
                sib.update(size=entry.size, blobId=entry.oid)
                if entry.lfs:
                    sib["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": 0}
            siblings.append(sib)
        author = repo.repo_id.split("/")[0]
        return self._send(200, {
            "_id": repo.repo_id, "id": repo.repo_id, "modelId": repo.repo_id, "author": author, "sha": commit.oid,
            "private": repo.private, "gated": False, "disabled": False, "lastModified": commit.date,
            "createdAt": commit.date, "siblings": siblings, "tags": [], "downloads": 0, "likes": 0,
        })

    def _tree(self, repo: Repo, rev: str, sub: str):
        commit = self.hub.resolve_revision(repo, rev)
        recursive = self.query.get("recursive") in ("1", "true", "True")
        prefix = sub.strip("/") + "/" if sub.strip("/") else ""
        items, dirs = [], set()
        for path, entry in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            parts = rest.split("/")
            for depth in range(1, len(parts)):
                d = prefix + "/".join(parts[:depth])
                if (recursive or depth == 1) and d not in dirs:
                    dirs.add(d)
                    oid = hashlib.sha1(d.encode()).hexdigest()
                    items.append({"type": "directory", "path": d, "oid": oid, "size": 0})
            if recursive or len(parts) == 1:
                items.append(self._entry_json(path, entry))
        if prefix and not items:
            raise HubError(404, f"{sub} does not exist on {rev}", "EntryNotFound")
        return self._send(200, items)

    def _paths_info(self, repo: Repo, rev: str):
        raw = self._body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(raw).get("paths", [])
        else:
            paths = parse_qs(raw.decode()).get("paths", [])
        commit = self.hub.resolve_revision(repo, rev)
        return self._send(200, [self._entry_json(p, commit.files[p]) for p in paths if p in commit.files])

    def _commits(self, repo: Repo, rev: str):
        commit, out = self.hub.resolve_revision(repo, rev), []
        while commit is not None:
            out.append({"id": commit.oid, "title": commit.title, "message": commit.message, "date": commit.date,
                        "authors": [{"user": repo.repo_id.split("/")[0], "avatar": None}]})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        return self._send(200, out)

    def _preupload(self, repo: Repo, rev: str):
        body = json.loads(self._body())
        try:
            files = self.hub.resolve_revision(repo, rev).files
        except HubError:
            files = {}  # a branch that does not exist yet: nothing to compare against
        answer = []
        for f in body.get("files", []):
            sample = base64.b64decode(f.get("sample", ""))
            lfs = f["size"] >= LFS_THRESHOLD or f["path"].endswith(LFS_SUFFIXES) or b"\0" in sample
            item = {"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            existing = files.get(f["path"])
            if existing is not None:
                item["oid"] = existing.sha256 if existing.lfs else existing.oid
            answer.append(item)
        head = self.hub.resolve_revision(repo, rev).oid if files else None
        return self._send(200, {"files": answer, "commitOid": head})

    def _lfs_batch(self, repo_type: str, repo_id: str):
        self._repo(repo_type, unquote(repo_id), write=True)
        body = json.loads(self._body())
        objects = []
        for obj in body.get("objects", []):
            item = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.hub.blobs:
                href = f"{self.hub.cdn_url}/lfs/{obj['oid']}"
                item["actions"] = {"upload": {"href": href, "header": {}},
                                   "verify": {"href": f"{href}/verify", "header": {}}}
            objects.append(item)
        return self._send(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                          {"Content-Type": "application/vnd.git-lfs+json"})

    def _commit(self, repo: Repo, rev: str):
        lines = [json.loads(line) for line in self._body().decode().splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        rev = unquote(rev)
        with self.hub.lock:
            if self.query.get("create_pr") in ("1", "true", "True"):
                base = self.hub.resolve_revision(repo, rev)
                repo.pr_count += 1
                target = f"refs/pr/{repo.pr_count}"
            else:
                base, target = self.hub.resolve_revision(repo, rev), rev
            if header.get("parentCommit") and header["parentCommit"] != base.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    data = base64.b64decode(value["content"]) if value.get("encoding", "base64") == "base64" \
                        else value["content"].encode()
                    sha = hashlib.sha256(data).hexdigest()
                    self.hub.blobs[sha] = data
                    files[value["path"]] = Entry(len(data), sha, git_blob_sha1(data))
                elif key == "lfsFile":
                    sha, size = value["oid"], value["size"]
                    xet = self.hub.sha_to_xet.get(sha)
                    if sha not in self.hub.blobs and xet is None:
                        raise HubError(400, f"lfsFile {value['path']}: unknown object {sha}")
                    files[value["path"]] = Entry(size, sha, git_blob_sha1(lfs_pointer(sha, size)), lfs=True,
                                                 xet_hash=None if sha in self.hub.blobs else xet)
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: e for p, e in files.items() if not p.startswith(prefix)}
            oid = self.hub._new_oid(repo.repo_id)
            repo.commits[oid] = Commit(oid, base.oid, files, header.get("summary", ""),
                                       header.get("description", ""), _now())
            repo.refs[target] = oid
        url = f"{self.hub.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"
        pr_url = f"{url}/discussions/{repo.pr_count}" if target.startswith("refs/pr/") else None
        return self._send(200, {"success": True, "commitOid": oid, "commitUrl": f"{url}/commit/{oid}",
                                "commitMessage": header.get("summary", ""), "pullRequestUrl": pr_url})

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str):
        repo = self._repo(repo_type, repo_id)
        commit = self.hub.resolve_revision(repo, rev)
        entry = commit.files.get(path)
        if entry is None:
            err = HubError(404, "Entry not found", "EntryNotFound")
            err.extra_headers = {"X-Repo-Commit": commit.oid}
            raise err
        headers = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if not entry.lfs:
            headers["ETag"] = f'"{entry.oid}"'
            return self._send_bytes(self.hub.blobs[entry.sha256], headers)
        headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": entry.size,
                        "Location": f"{self.hub.cdn_url}/lfs/{entry.sha256}", "ETag": f'"{entry.oid}"'})
        if entry.xet_hash:
            api = f"{self.hub.url}/api/{repo_type}s/{repo_id}"
            headers["X-Xet-Hash"] = entry.xet_hash
            headers["Link"] = f'<{api}/xet-read-token/{commit.oid}>; rel="xet-auth"'
        return self._send(302, b"", headers)

    def _send_bytes(self, data: bytes, headers: dict):
        """200 with the bytes, or 206 for a ``Range: bytes=a-[b]`` request (the client resumes downloads this way)."""
        rng = self.headers.get("Range")
        if rng and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())):
            start = int(m[1])
            end = int(m[2]) if m[2] else len(data) - 1
            if start >= len(data):
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
            return self._send(206, data[start : end + 1], headers)
        return self._send(200, data, headers)

    # ---- cdn routes: LFS blobs and the Xet CAS
    def _route_cdn(self, path: str):
        if m := re.fullmatch(r"/lfs/([0-9a-f]{64})(/verify)?", path):
            sha = m[1]
            if self.command == "PUT":
                data = self._body()
                if hashlib.sha256(data).hexdigest() != sha:
                    raise HubError(400, "sha256 mismatch")
                self.hub.blobs[sha] = data
                return self._send(200, {})
            if m[2]:
                self._body()
                return self._send(200 if sha in self.hub.blobs else 404, {})
            if sha in self.hub.blobs:
                return self._send_bytes(self.hub.blobs[sha], {"ETag": f'"{sha}"'})
            xet = self.hub.sha_to_xet.get(sha)
            if xet is None:
                raise HubError(404, "no such object")
            return self._send_bytes(self._reassemble(xet), {"ETag": f'"{sha}"'})
        # Xet CAS: everything below needs the short-lived Xet token, never the Hub token.
        token = self.headers.get("Authorization", "")[7:].strip()
        if m := re.fullmatch(r"/xorb/([0-9a-f]{64})", path):
            return self._send_bytes(self.hub.xorbs[m[1]], {})
        if token not in self.hub.xet_tokens:
            raise HubError(401, "invalid xet token")
        if m := re.fullmatch(r"/v1/xorbs/default/([0-9a-f]{64})", path):
            data = self._body()
            inserted = m[1] not in self.hub.xorbs
            self.hub.xorbs[m[1]] = data
            return self._send(200, {"was_inserted": inserted})
        if path == "/v1/shards" and self.command == "POST":
            for file_hash, sha, entries in parse_shard(self._body()):
                self.hub.xet_files[file_hash] = entries
                if sha is not None:  # register both byte orders; the client names the file by its sha256 hex
                    self.hub.sha_to_xet[sha.hex()] = file_hash
                    self.hub.sha_to_xet[xet_hex(sha)] = file_hash
            return self._send(200, {"result": 1})
        if m := re.fullmatch(r"/v1/reconstructions/([0-9a-f]{64})", path):
            return self._reconstruction(m[1])
        self._body()
        raise HubError(404, "not implemented here (v2 / grant / dedup routes: the client falls back)")

    def _reconstruction(self, file_hash: str):
        entries = self.hub.xet_files.get(file_hash)
        if entries is None:
            raise HubError(404, "unknown file")
        total = sum(e[3] for e in entries)
        first, last = 0, total - 1
        if (rng := self.headers.get("Range")) and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())):
            first, last = int(m[1]), min(int(m[2]) if m[2] else total - 1, total - 1)
            if first >= total:
                return self._send(416, b"", {"Content-Range": f"bytes */{total}"})
        terms, fetch, pos, offset_into_first = [], {}, 0, None
        for xorb, start, end, size in entries:
            if pos + size > first and pos <= last:
                if offset_into_first is None:
                    offset_into_first = first - pos
                offsets = [c[0] for c in xorb_chunk_offsets(self.hub.xorbs[xorb])]
                terms.append({"hash": xorb, "unpacked_length": size, "range": {"start": start, "end": end}})
                fetch.setdefault(xorb, []).append({
                    "range": {"start": start, "end": end}, "url": f"{self.hub.cdn_url}/xorb/{xorb}",
                    "url_range": {"start": offsets[start], "end": offsets[end] - 1},
                })
            pos += size
        return self._send(200, {"offset_into_first_range": offset_into_first or 0, "terms": terms, "fetch_info": fetch})

    def _reassemble(self, file_hash: str) -> bytes:
        out = bytearray()
        for xorb_hash, start, end, _size in self.hub.xet_files[file_hash]:
            xorb = self.hub.xorbs[xorb_hash]
            chunks = xorb_chunk_offsets(xorb)
            for i in range(start, end):
                out += decode_chunk(xorb, chunks[i][0], chunks[i + 1][0], chunks[i][1])
        return bytes(out)


__all__ = ["HubServer", "git_blob_sha1", "lfs_pointer", "quote"]
