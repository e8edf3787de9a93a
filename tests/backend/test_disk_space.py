"""disk_space.py and everything a full disk touches, on a real full filesystem (an 8 MiB tmpfs).

The backend runs as a real process with its data directory on the small disk (its log kept
elsewhere). A disk that fills while a job finishes ends that job with ``disk_full`` and the
worker carries on once space is back; a submit on a full disk is ``disk_full`` and leaves
nothing behind; delete works on a full disk; ``serve`` starts on one and says so; and the
free-space floor refuses new jobs before the disk is full at all.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shared_protocol.client import BackendClient
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import (
    DeleteReply,
    DeleteRequest,
    ImageInput,
    JobFailedEvent,
    ListJobsRequest,
    PingReply,
    PingRequest,
    ProgressEvent,
    ResultEvent,
    StatusRequest,
    SubmitRequest,
)
from tests.support.backend_process import BackendProcess
from tests.support.small_disk import SmallDisk, small_disk  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

QUICK = {"resolution": 24, "steps": 4}
MEDIUM = {"resolution": 96, "steps": 60}  # a few seconds: long enough to fill the disk mid-job


def backend_on(disk: SmallDisk, tmp_path: Path, *args: str) -> BackendProcess:
    return BackendProcess(disk.path / "data", *args, log_path=tmp_path / "backend.log")


@pytest.fixture
def on_small_disk(small_disk: SmallDisk, tmp_path: Path) -> Iterator[BackendProcess]:  # noqa: F811
    backend = backend_on(small_disk, tmp_path, "--min-free-mb", "0").start()
    try:
        yield backend
    finally:
        backend.stop()  # before the disk is unmounted


def text_job(params: dict = QUICK, prompt: str = "a gold torus") -> SubmitRequest:
    return SubmitRequest(
        model="procedural",
        task="text",
        prompt=prompt,
        parameters=params,
        target_faces=500,
        texture_size=256,
    )


def end_of(client: BackendClient, job_id: str, timeout_s: float) -> object | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        message = envelope.message if envelope else None
        if isinstance(message, (ResultEvent, JobFailedEvent)) and message.job_id == job_id:
            return message
    return None


def refused(client: BackendClient, request) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        client.request(request, timeout_s=30)
    return caught.value


def noise_png(side: int = 256) -> bytes:
    """An image that does not compress: about 200 KB."""
    pixels = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_disk_that_fills_mid_job_fails_that_job_and_the_worker_carries_on(
    small_disk: SmallDisk,  # noqa: F811
    on_small_disk: BackendProcess,
) -> None:
    with BackendClient(on_small_disk.address) as client:
        job_id = client.request(text_job(MEDIUM), timeout_s=30).job_id
        deadline = time.monotonic() + 60
        while True:  # the job is under way
            envelope = client.receive(timeout_s=0.5)
            if envelope and isinstance(envelope.message, ProgressEvent):
                break
            assert time.monotonic() < deadline, "the job never started"
        small_disk.fill()
        ended = end_of(client, job_id, timeout_s=60)
        small_disk.free()
        assert isinstance(ended, JobFailedEvent), f"the job never ended: {ended}"
        assert ended.error.code == ErrorCode.DISK_FULL.value and ended.error.hint
        status = client.request(StatusRequest(job_id=job_id), timeout_s=30).job
        assert status.state == "failed" and status.error.code == ErrorCode.DISK_FULL.value

        # Space is back: the same worker runs the next job.
        next_id = client.request(text_job(prompt="a green cube"), timeout_s=30).job_id
        assert isinstance(end_of(client, next_id, timeout_s=60), ResultEvent)
        pong = client.request(PingRequest(), timeout_s=30)
        assert isinstance(pong, PingReply) and pong.running_jobs == 0
        ((worker),) = pong.workers
        assert worker.alive and worker.restarts == 0  # it never died


def test_a_submit_on_a_full_disk_is_disk_full_and_leaves_nothing_behind(
    small_disk: SmallDisk,  # noqa: F811
    on_small_disk: BackendProcess,
) -> None:
    jobs_dir = on_small_disk.data_dir / "jobs"
    with BackendClient(on_small_disk.address) as client:
        small_disk.fill()
        error = refused(client, text_job())
        assert error.code is ErrorCode.DISK_FULL and "Free disk space" in error.hint
        small_disk.free()
        # Room for the job's row, not for its input image: the half-made folder must go.
        small_disk.fill(leave_bytes=64 * 1024)
        image = ImageInput(data=noise_png())
        error = refused(client, SubmitRequest(model="inflate", task="image", images=(image,)))
        assert error.code is ErrorCode.DISK_FULL and error.hint
        assert list(jobs_dir.iterdir()) == []
        assert client.request(ListJobsRequest(), timeout_s=30).jobs == ()
        small_disk.free()
        accepted = client.request(text_job(), timeout_s=30).job_id
        assert isinstance(end_of(client, accepted, timeout_s=60), ResultEvent)


def test_delete_works_on_a_full_disk(
    small_disk: SmallDisk,  # noqa: F811
    on_small_disk: BackendProcess,
) -> None:
    with BackendClient(on_small_disk.address) as client:
        done = []
        for index in range(3):
            job_id = client.request(text_job(prompt=f"a red cone {index}"), timeout_s=30).job_id
            assert isinstance(end_of(client, job_id, timeout_s=60), ResultEvent)
            done.append(job_id)
        small_disk.fill()
        for job_id in done:
            reply = client.request(DeleteRequest(job_id=job_id), timeout_s=30)
            assert isinstance(reply, DeleteReply)
            assert not (on_small_disk.data_dir / "jobs" / job_id).exists()
        assert client.request(ListJobsRequest(), timeout_s=30).jobs == ()
        assert small_disk.free_bytes() > 0  # deleting gave space back


def test_serve_starts_on_a_full_disk_and_says_so(
    small_disk: SmallDisk,  # noqa: F811
    tmp_path: Path,
) -> None:
    backend = backend_on(small_disk, tmp_path, "--min-free-mb", "0").start()
    with BackendClient(backend.address) as client:
        job_id = client.request(text_job(), timeout_s=30).job_id
        assert isinstance(end_of(client, job_id, timeout_s=60), ResultEvent)
    backend.stop()
    small_disk.fill()

    backend = backend_on(small_disk, tmp_path, "--min-free-mb", "0").start()
    try:
        assert "warning: the disk holding" in backend.log()
        with BackendClient(backend.address) as client:
            pong = client.request(PingRequest(), timeout_s=30)
            # What is left is the reserve it gave back to open the job store.
            assert pong.disk_free_mb is not None and pong.disk_free_mb < 2.0
            assert client.request(StatusRequest(job_id=job_id), timeout_s=30).job.state == (
                "succeeded"
            )
            assert refused(client, text_job()).code is ErrorCode.DISK_FULL
    finally:
        backend.stop()


def test_the_free_space_floor_refuses_new_jobs_before_the_disk_is_full(
    small_disk: SmallDisk,  # noqa: F811
    tmp_path: Path,
) -> None:
    backend = backend_on(small_disk, tmp_path, "--min-free-mb", "4").start()
    try:
        with BackendClient(backend.address) as client:
            small_disk.fill(leave_bytes=3 * 2**20)
            error = refused(client, text_job())
            assert error.code is ErrorCode.DISK_FULL and "floor of 4 MB" in str(error)
            small_disk.free()
            job_id = client.request(text_job(), timeout_s=30).job_id
            assert isinstance(end_of(client, job_id, timeout_s=60), ResultEvent)
    finally:
        backend.stop()
