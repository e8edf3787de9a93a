"""runtime.py: the backend dying mid-job, reconnecting, results finished while away, and how
the backend's errors reach the panel.

The tests that stop their backend run their own real backend subprocess.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import bpy
import pytest

from shared_protocol.client import BackendClient
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import StatusRequest, SubmitRequest
from tests.blender_addon.conftest import pump, reset_runtime, text_job
from tests.blender_addon.operators.test_generate import dreamcad_objects, submit_from_panel
from tests.support.backend_process import BackendProcess

MEDIUM = {"resolution": 96, "steps": 48}  # a few seconds: long enough to kill it mid-way


@pytest.fixture
def own_backend(fresh, tmp_path: Path) -> Iterator[BackendProcess]:
    process = BackendProcess(tmp_path / "backend").start()
    fresh.preferences.preferences().backend_address = process.address
    yield process
    process.stop()


def connect(addon) -> None:
    bpy.ops.dreamcad.connect()
    assert addon.runtime.STATE.session.connected
    bpy.ops.dreamcad.select_model(model_id="procedural")


def test_backend_killed_mid_job_then_restarted(fresh, own_backend: BackendProcess) -> None:
    runtime = fresh.runtime
    fresh.preferences.preferences().reply_timeout_s = 2.0
    connect(fresh)
    msg_id = submit_from_panel(fresh, "purple cone", MEDIUM)
    plan = runtime.STATE.plans[msg_id]
    active_job = fresh.live_state.active_job
    pump(fresh, lambda: (job := active_job()) is not None and job.progress is not None)
    own_backend.kill()

    pump(fresh, lambda: runtime.STATE.session.state.value == "lost")  # no hang
    report = runtime.STATE.report
    assert report.level == "ERROR" and "stopped answering" in report.message
    assert "Retry" in report.hint
    assert not plan.done  # the job is not given up: the backend may still finish it
    assert isinstance(runtime.tick(), float)  # the timer keeps running
    assert bpy.ops.mesh.primitive_cube_add() == {"FINISHED"}  # and so does Blender
    with pytest.raises(ProtocolError, match="stopped answering"):
        runtime.require_session()  # what Generate reports until Retry succeeds

    # Restarted on the same port and data: it re-runs the interrupted job; we reconnect and
    # the result comes to us and is imported where it was meant to go.
    with BackendProcess(own_backend.data_dir, port=own_backend.port):
        bpy.ops.dreamcad.connect()
        pump(fresh, lambda: plan.done)
    assert plan.error is None, plan.error
    (obj,) = dreamcad_objects()
    assert obj["dreamcad_job_id"] == plan.job_id and obj.name == "Purple cone"


def test_result_finished_while_away_is_offered_and_fetched(fresh, own_backend) -> None:
    runtime = fresh.runtime
    connect(fresh)
    msg_id = submit_from_panel(fresh, "white torus")
    pump(fresh, lambda: runtime.STATE.plans[msg_id].job_id)
    job_id = runtime.STATE.plans[msg_id].job_id
    reset_runtime(fresh)  # Blender closes before the result arrives

    deadline = time.monotonic() + 60
    with BackendClient(own_backend.address) as other_client:
        while other_client.request(StatusRequest(job_id=job_id)).job.state != "succeeded":
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.2)

    connect(fresh)  # the next Blender session
    pump(fresh, lambda: job_id in runtime.STATE.offered)
    assert "not in this file" in runtime.STATE.report.message
    assert not dreamcad_objects()
    assert bpy.ops.dreamcad.reimport(job_id=job_id) == {"FINISHED"}  # fetches first
    pump(fresh, lambda: dreamcad_objects())
    (obj,) = dreamcad_objects()
    assert obj["dreamcad_job_id"] == job_id and obj["dreamcad_prompt"] == "white torus"
    assert job_id not in runtime.STATE.offered
    runtime.sync_rows()
    (row,) = [r for r in bpy.context.window_manager.dreamcad_live.jobs if r.job_id == job_id]
    assert row.imported


def test_delete_forgets_the_job(fresh, own_backend) -> None:
    runtime = fresh.runtime
    connect(fresh)
    text_job(fresh, "black box")
    bpy.ops.dreamcad.generate()
    (obj,) = dreamcad_objects()
    job_id = obj["dreamcad_job_id"]
    assert bpy.ops.dreamcad.delete(job_id=job_id) == {"FINISHED"}
    pump(fresh, lambda: job_id not in runtime.STATE.session.jobs)
    assert obj.name in bpy.data.objects  # what was imported stays


def test_a_refused_request_is_reported_with_its_field(connected) -> None:
    """The backend's error reaches the plan and the panel with the field at fault."""
    runtime = connected.runtime
    request = SubmitRequest(model="no-such-model", task="text", prompt="a torus")
    msg_id = runtime.submit(request, runtime.SubmitPlan(connected.importer.Placement()))
    plan = runtime.STATE.plans[msg_id]
    pump(connected, lambda: plan.done)
    assert plan.error.code == ErrorCode.UNKNOWN_MODEL.value and plan.error.field == "body.model"
    report = runtime.STATE.report
    assert report.level == "ERROR" and report.message.endswith("(body.model)")
    assert report.hint == plan.error.hint and report.hint
