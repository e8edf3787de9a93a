"""The model shelf through a real backend process: download as a job, restart mid-download,
model states in hello and ping, load and release on the CPU with tiny weights.

The hub is a local folder served over real HTTP on 127.0.0.1 (tests/support/local_hub.py)
holding tiny random Shap-E (image) weights in the official layout; the backend fetches them
with ``HF_ENDPOINT`` pointed at it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from backend.models.shap_e.testing import write_tiny_weights
from shared_protocol.client import BackendClient
from shared_protocol.messages import (
    DownloadFinishedEvent,
    DownloadProgressEvent,
    DownloadReply,
    DownloadRequest,
    DownloadStatusReply,
    DownloadStatusRequest,
    HelloReply,
    HelloRequest,
    LoadRequest,
    ModelState,
    ModelStateReply,
    PingReply,
    PingRequest,
    UnloadRequest,
)
from tests.support.backend_process import BackendProcess
from tests.support.local_hub import LocalHub

pytestmark = pytest.mark.slow

MODEL = "shap-e-img2img"


def states_of(client: BackendClient, model: str) -> list[ModelState]:
    reply = client.request(PingRequest())
    assert isinstance(reply, PingReply)
    return [s for s in reply.model_states if s.model == model]


def wait_for_state(client: BackendClient, model: str, state: str, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = states_of(client, model)
        if any(s.state == state for s in found):
            return found
        time.sleep(0.2)
    raise TimeoutError(f"{model} never became {state}: {states_of(client, model)}")


def test_download_survives_a_restart_then_load_and_release(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub").start()
    weights = write_tiny_weights(tmp_path / "hub" / "openai" / MODEL, MODEL)
    on_hub = sum(f.stat().st_size for f in weights.rglob("*") if f.is_file())
    hub.delay_s = 0.4  # a few seconds for the whole download: time to kill the backend
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0",
           "HF_TOKEN": ""}  # fmt: skip
    backend = BackendProcess(tmp_path / "data", env=env).start()
    try:
        with BackendClient(backend.address) as client:
            hello = client.request(HelloRequest())
            assert isinstance(hello, HelloReply) and hello.protocol_version == 3
            assert [s.state for s in hello.model_states if s.model == MODEL] == ["missing"]
            assert MODEL not in hello.recommended and "inflate" in hello.recommended
            info = next(m for m in hello.models if m.id == MODEL)
            assert not info.weights_present and not info.license_gated
            reply = client.request(DownloadRequest(model=MODEL))
            assert isinstance(reply, DownloadReply)
            download_id = reply.download.download_id
            progress = _first_progress(client, download_id)
            assert progress.files_total == 9 and progress.bytes_total == on_hub
            (downloading,) = states_of(client, MODEL)
            assert downloading.state == "downloading" and downloading.download_id == download_id
        backend.kill()  # mid-download, no chance to clean up
        assert hub.ranges, "nothing was asked of the hub before the kill"
        hub.delay_s = 0.0
        backend = BackendProcess(tmp_path / "data", env=env, port=backend.port).start()
        with BackendClient(backend.address) as client:
            status = client.request(DownloadStatusRequest(download_id=download_id, watch=True))
            assert isinstance(status, DownloadStatusReply)
            end = status.downloads[0]
            if end.state != "succeeded":  # resumed after the restart: watch it end
                end = _finished(client, download_id).download
            assert end.state == "succeeded", end.error
            assert end.progress.bytes_done == end.progress.bytes_total == progress.bytes_total
            hello = client.request(HelloRequest())
            assert [s.state for s in hello.model_states if s.model == MODEL] == ["present"]
            assert MODEL in hello.recommended

            loaded = client.request(LoadRequest(model=MODEL))
            assert isinstance(loaded, ModelStateReply)
            assert loaded.states[0].state in ("loading", "loaded")
            (state,) = wait_for_state(client, MODEL, "loaded")
            assert state.device == "cpu" and state.error is None
            released = client.request(UnloadRequest(model=MODEL))
            assert isinstance(released, ModelStateReply)
            wait_for_state(client, MODEL, "present", timeout_s=10)
    finally:
        backend.stop()
        hub.stop()


def _first_progress(client: BackendClient, download_id: str):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        if envelope and isinstance(envelope.message, DownloadProgressEvent):
            assert envelope.message.download_id == download_id
            return envelope.message.progress
    raise TimeoutError("no download progress")


def _finished(client: BackendClient, download_id: str) -> DownloadFinishedEvent:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        if envelope and isinstance(envelope.message, DownloadFinishedEvent):
            assert envelope.message.download.download_id == download_id
            return envelope.message
    raise TimeoutError("the download never ended")
