"""A local folder served as the Hugging Face hub over real HTTP on 127.0.0.1.

It speaks the subset of the hub API the downloader uses: ``GET``/``HEAD``
``/REPO/resolve/REV/PATH`` (with ``Range``, ``X-Repo-Commit``, ``X-Linked-Size``) and
``GET /api/models/REPO/tree/REV/FOLDER?recursive=true`` (paths, sizes, LFS sha256). Files live
in ``root/REPO/PATH``; ``gated`` repos answer 401; ``delay_s`` sleeps between 64 KiB blocks so a
test can cancel mid-file; ``ranges`` records every range asked for (to prove a resume).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BLOCK = 64 * 1024


class LocalHub:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.gated: set[str] = set()
        self.delay_s = 0.0
        self.ranges: list[tuple[str, int]] = []  # (path, first byte asked for)
        self.served_bytes = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                hub._serve(self, body=True)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo: str, path: str, data: bytes) -> str:
        """Put a file in the hub; return its sha256."""
        target = self.root / repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def start(self) -> LocalHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, request: BaseHTTPRequestHandler, body: bool) -> None:
        url = urllib.parse.urlsplit(request.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and "tree" in parts:
            at = parts.index("tree")
            repo, folder = "/".join(parts[2:at]), "/".join(parts[at + 2 :])
            return self._tree(request, repo, folder)
        if "resolve" not in parts:
            return request.send_error(404)
        at = parts.index("resolve")
        repo, path = "/".join(parts[:at]), "/".join(parts[at + 2 :])
        if repo in self.gated:
            return request.send_error(401, "gated")
        file = self.root / repo / path
        if not file.is_file():
            return request.send_error(404)
        data = file.read_bytes()
        start = 0
        if ranged := request.headers.get("Range"):
            start = int(ranged.removeprefix("bytes=").split("-")[0])
        if body:
            self.ranges.append((path, start))
        request.send_response(206 if start else 200)
        request.send_header("Content-Length", str(len(data) - start))
        request.send_header("X-Repo-Commit", COMMIT)
        request.send_header("X-Linked-Size", str(len(data)))
        request.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        request.end_headers()
        if not body:
            return
        try:
            for offset in range(start, len(data), BLOCK):
                request.wfile.write(data[offset : offset + BLOCK])
                self.served_bytes += min(BLOCK, len(data) - offset)
                if self.delay_s:
                    time.sleep(self.delay_s)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client cancelled

    def _tree(self, request: BaseHTTPRequestHandler, repo: str, folder: str) -> None:
        base = self.root / repo
        entries = [
            {
                "type": "file",
                "path": str(f.relative_to(base)),
                "size": f.stat().st_size,
                "lfs": {"oid": hashlib.sha256(f.read_bytes()).hexdigest(),
                        "size": f.stat().st_size},
            }
            for f in sorted((base / folder).rglob("*"))
            if f.is_file()
        ]
        payload = json.dumps(entries).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
