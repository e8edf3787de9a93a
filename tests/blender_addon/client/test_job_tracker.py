"""client/job_tracker.py: replies and events folded into job records (plain data, no socket).

The messages are the protocol's own dataclasses, built as the backend would send them; the
end-to-end path over a real socket is covered by test_session.py and test_runtime.py.
"""

from __future__ import annotations

from shared_protocol.errors import DEFAULT_HINTS, ErrorCode, ErrorInfo
from shared_protocol.messages import (
    JobFailedEvent,
    JobInfo,
    Manifest,
    Progress,
    ProgressEvent,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)

REQUEST = SubmitRequest(model="procedural", task="text", prompt="red torus", name="red torus",
                        seed=11)
MANIFEST = Manifest(format="glb", faces=10, vertices=8, bbox_min=(0, 0, 0), bbox_max=(1, 1, 1),
                    seed=11, model="procedural")


def names(notes) -> list[str]:
    return [type(n).__name__ for n in notes]


def test_an_event_that_overtakes_its_submit_reply_still_finds_its_job(addon) -> None:
    tracker = addon.client.job_tracker.JobTracker()
    tracker.submit_sent("msg1", REQUEST)
    progress = Progress(stage="field", step=1, total=4, fraction=0.25)
    assert names(tracker.event(ProgressEvent(job_id="j1", progress=progress), "msg1")) == \
        ["JobChanged"]
    job = tracker.jobs["j1"]
    assert job.submitted_here and job.submit_msg_id == "msg1" and job.prompt == "red torus"
    assert job.state == "running" and job.percent == 25.0 and tracker.live

    tracker.submitted(SubmitReply(job_id="j1", seed=11, queue_position=0), REQUEST, "msg1")
    assert tracker.jobs["j1"] is job  # the reply completes the same record
    notes = tracker.event(ResultEvent(job_id="j1", manifest=MANIFEST, asset=b"glb",
                                      preview=b"png"), "msg1")
    assert names(notes) == ["JobChanged", "ResultReady"] and notes[1].preview == b"png"
    assert job.state == "succeeded" and job.result_received and not tracker.live
    assert tracker.event(ProgressEvent(job_id="other", progress=progress), "nobody") == []


def test_failure_event_and_forgotten_jobs_end_the_record(addon) -> None:
    records = addon.client.records
    tracker = addon.client.job_tracker.JobTracker()
    tracker.submitted(SubmitReply(job_id="j1", seed=3, queue_position=0), REQUEST, "m1")
    error = records.client_error(ErrorCode.MODEL_FAILED, "boom", "try again")
    notes = tracker.event(JobFailedEvent(job_id="j1", state="failed", error=error), "m1")
    assert names(notes) == ["JobChanged", "JobEnded"] and notes[1].error.message == "boom"

    tracker.submitted(SubmitReply(job_id="j2", seed=4, queue_position=1), REQUEST, "m2")
    tracker.request_failed("j2", records.client_error(ErrorCode.UNKNOWN_JOB, "no job j2"))
    assert tracker.jobs["j2"].state == "failed"  # the backend forgot it: never finishes now
    tracker.submitted(SubmitReply(job_id="j3", seed=5, queue_position=1), REQUEST, "m3")
    tracker.request_failed("j3", records.client_error(ErrorCode.TIMEOUT, "slow"))
    assert tracker.jobs["j3"].state == "queued"  # a passing failure leaves it live


def test_server_errors_keep_their_field(addon) -> None:
    tracker = addon.client.job_tracker.JobTracker()
    tracker.submitted(SubmitReply(job_id="j1", seed=3, queue_position=0), REQUEST, "m1")
    error = ErrorInfo(code="invalid_parameter", message="steps must be at most 64",
                      field="body.parameters.steps")
    notes = tracker.event(JobFailedEvent(job_id="j1", state="failed", error=error), "m1")
    assert notes[1].error.field == "body.parameters.steps"
    assert notes[1].error.hint == DEFAULT_HINTS[ErrorCode.INVALID_PARAMETER]  # none was sent

    newer = ErrorInfo(code="from_a_newer_backend", message="?", field="body.images[0].data",
                      hint="do this")
    job = tracker.merge(JobInfo(job_id="j2", state="failed", model="procedural", task="text",
                                prompt="", name="", priority=0, created_at=0.0, error=newer))
    assert job.error == ErrorInfo(code=ErrorCode.INTERNAL_ERROR.value, message="?",
                                  field="body.images[0].data", hint="do this")


def test_reconnect_rewatches_live_jobs_and_results_never_received(addon) -> None:
    tracker = addon.client.job_tracker.JobTracker()

    def info(job_id: str, state: str, **extra) -> JobInfo:
        return JobInfo(job_id=job_id, state=state, model="procedural", task="text",
                       prompt=job_id, name=job_id, priority=0, created_at=0.0, **extra)

    running = info("live", "running", progress=Progress(stage="bake", fraction=0.5))
    tracker.merge(running)
    tracker.merge(info("done-elsewhere", "succeeded", manifest=MANIFEST))
    tracker.merge(info("gone", "cancelled"))
    tracker.result("received", MANIFEST, b"", None)  # unknown job: ignored
    assert "received" not in tracker.jobs
    assert tracker.jobs["done-elsewhere"].seed == MANIFEST.seed  # from elsewhere: from manifest
    assert sorted(tracker.to_watch()) == ["done-elsewhere", "live"]
    tracker.connection_lost()
    assert tracker.jobs["live"].progress is None  # stale until the backend says again

    notes, fetch_now = tracker.status(info("done-elsewhere", "succeeded", manifest=MANIFEST))
    assert names(notes) == ["JobChanged"] and not fetch_now  # not ours: offered, not fetched
    tracker.submitted(SubmitReply(job_id="mine", seed=1, queue_position=0), REQUEST, "m")
    _notes, fetch_now = tracker.status(info("mine", "succeeded", manifest=MANIFEST))
    assert fetch_now  # ours, finished while we were away
    assert names(tracker.deleted("mine")) == ["JobChanged", "JobDeleted"]
    assert "mine" not in tracker.jobs
