"""The subset of the Hugging Face hub's HTTP API the downloader uses, over the standard library.

Three calls: ``resolve`` (a file's bytes at a revision, ranged so a partial file resumes; the
``X-Repo-Commit`` header names the commit a branch points at), ``HEAD`` of the same URL (its
size when the adapter did not declare it) and ``api/models/REPO/tree/REV/FOLDER`` (a folder's
files with their sizes and LFS sha256). The endpoint is ``HF_ENDPOINT`` (as for the hub
library), the token ``HF_TOKEN`` or the one ``hf auth login`` stored, and ``HF_HUB_OFFLINE``
stops every call before it is made. Each failure is a coded error that says what to do.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import IO

from shared_protocol.errors import ErrorCode, ProtocolError

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_S = 30.0
TRUE_VALUES = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class HubFile:
    """One file of a repo at a revision: its size and, for LFS files, its sha256."""

    path: str
    size: int = 0
    sha256: str = ""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_VALUES


def _token() -> str | None:
    if token := os.environ.get("HF_TOKEN"):
        return token
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return get_token()


def resolve_url(repo_id: str, revision: str, path: str) -> str:
    quoted = urllib.parse.quote(path)
    return f"{endpoint()}/{repo_id}/resolve/{urllib.parse.quote(revision, safe='')}/{quoted}"


def _request(url: str, method: str = "GET", start: int = 0) -> urllib.request.Request:
    headers = {"User-Agent": "dreamcad-backend"}
    if token := _token():
        headers["Authorization"] = f"Bearer {token}"
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.Request(url, method=method, headers=headers)


def _open(repo_id: str, what: str, request: urllib.request.Request, env_name: str):
    if offline():
        raise _unreachable(what, "HF_HUB_OFFLINE is set", env_name)
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise _http_error(repo_id, what, error) from None
    except (urllib.error.URLError, OSError) as error:
        raise _unreachable(what, str(getattr(error, "reason", error)), env_name) from None


def open_file(
    repo_id: str, revision: str, path: str, start: int, env_name: str
) -> tuple[IO[bytes], int, str]:
    """(body stream, offset it starts at, commit) of ``path``; ``start`` > 0 asks for the rest.

    A server that ignores the range answers the whole file: the offset is then 0."""
    response = _open(repo_id, path, _request(resolve_url(repo_id, revision, path), start=start),
                     env_name)  # fmt: skip
    offset = start if response.status == 206 else 0
    return response, offset, response.headers.get("X-Repo-Commit", "")


def file_size(repo_id: str, revision: str, path: str, env_name: str) -> int:
    """The file's size from a HEAD (the hub's ``X-Linked-Size`` for LFS files)."""
    url = resolve_url(repo_id, revision, path)
    with _open(repo_id, path, _request(url, "HEAD"), env_name) as response:
        size = response.headers.get("X-Linked-Size") or response.headers.get("Content-Length")
    return int(size or 0)


def list_folder(repo_id: str, revision: str, folder: str, env_name: str) -> list[HubFile]:
    """Every file under ``folder`` (recursively), following the API's ``Link: rel=next`` pages."""
    quoted_rev = urllib.parse.quote(revision, safe="")
    url: str | None = (
        f"{endpoint()}/api/models/{repo_id}/tree/{quoted_rev}/"
        f"{urllib.parse.quote(folder.rstrip('/'))}?recursive=true"
    )
    files: list[HubFile] = []
    while url:
        with _open(repo_id, f"{folder}/", _request(url), env_name) as response:
            entries = json.load(response)
            url = _next_page(response.headers.get("Link", ""))
        for entry in entries:
            if entry.get("type") != "file":
                continue
            lfs = entry.get("lfs") or {}
            files.append(HubFile(entry["path"], int(entry.get("size", 0)), lfs.get("oid", "")))
    return files


def _next_page(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            return part.split(";")[0].strip().strip("<>")
    return None


def _http_error(repo_id: str, what: str, error: urllib.error.HTTPError) -> ProtocolError:
    if error.code in (401, 403):
        return ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{repo_id} is gated: its licence must be accepted first",
            hint=f"Accept the licence at https://huggingface.co/{repo_id}, then run "
            "`hf auth login` (or set HF_TOKEN) and download again.",
        )
    if error.code == 404:
        return ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{repo_id}: {what} was not found (or the repo needs a login)",
            hint="Check the repo id, or log in with `hf auth login`.",
        )
    return ProtocolError(
        ErrorCode.WEIGHTS_MISSING,
        f"the Hugging Face hub answered {error.code} for {what}",
        hint="Try again later; the download resumes where it stopped.",
    )


def _unreachable(what: str, reason: str, env_name: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.WEIGHTS_MISSING,
        f"cannot reach the Hugging Face hub for {what}: {reason}",
        hint="Go online (unset HF_HUB_OFFLINE), or copy the files onto this machine and "
        f"point {env_name} at them.",
    )
