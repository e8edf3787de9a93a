"""``serve --max-queued-per-client``: a real backend refuses a client's submit past its cap with
``client_queue_full``, and takes it again once a queued job has started or gone."""

from __future__ import annotations

import time

import pytest

from shared_protocol.client import BackendClient
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import CancelRequest, SubmitReply, SubmitRequest
from tests.support.backend_process import BackendProcess

pytestmark = pytest.mark.slow

LONG = {"resolution": 320, "steps": 320}


def submit(client: BackendClient) -> str:
    reply = client.request(SubmitRequest(model="procedural", task="text", prompt="a torus",
                                         parameters=LONG, target_faces=2000, texture_size=256))
    assert isinstance(reply, SubmitReply)
    return reply.job_id


def test_past_the_cap_a_submit_is_refused_with_its_code(tmp_path) -> None:
    with BackendProcess(tmp_path / "data", "--max-queued-per-client", "1") as backend, \
            BackendClient(backend.address) as client:
        running = submit(client)
        queued = None
        for _ in range(200):  # the first is claimed by the one worker within moments
            try:
                queued = submit(client)
                break
            except ProtocolError as error:
                assert error.code == ErrorCode.CLIENT_QUEUE_FULL
                time.sleep(0.05)
        assert queued is not None
        with pytest.raises(ProtocolError) as caught:
            submit(client)
        assert caught.value.code == ErrorCode.CLIENT_QUEUE_FULL
        client.request(CancelRequest(job_id=queued))
        submit(client)  # room again
        client.request(CancelRequest(job_id=running))
