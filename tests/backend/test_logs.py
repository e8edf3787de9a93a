"""logs.py: JSON lines, and the job id on what a job's thread logs (and only there)."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest

from backend import logs


@pytest.fixture
def captured():
    """The root logger writing JSON lines into a buffer, as ``serve --log-json`` sets it up."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure("DEBUG", json_lines=True)
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def entries(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_job_context_names_the_job_on_any_logger_in_its_thread_only(captured) -> None:
    inside = threading.Event()
    go_on = threading.Event()

    def run_job() -> None:
        with logs.job_context("job-a"):
            logging.getLogger("some.model").info("step %d", 1)
            inside.set()
            go_on.wait(5)
            logging.getLogger("backend.geometry").warning("baking")
        logging.getLogger("backend.jobs.worker").info("idle")

    worker = threading.Thread(target=run_job, name="worker-x")
    worker.start()
    inside.wait(5)
    logging.getLogger("backend.server").info("meanwhile, in the server thread")
    go_on.set()
    worker.join(5)

    by_message = {e["message"]: e for e in entries(captured)}
    assert by_message["step 1"]["job_id"] == "job-a"
    assert by_message["baking"]["job_id"] == "job-a"
    assert by_message["baking"]["level"] == "WARNING"
    assert by_message["baking"]["logger"] == "backend.geometry"
    assert by_message["baking"]["thread"] == "worker-x"
    assert "job_id" not in by_message["meanwhile, in the server thread"]
    assert "job_id" not in by_message["idle"]


def test_extra_job_id_and_exceptions(captured) -> None:
    log = logging.getLogger("backend.jobs.queue")
    log.info("job %s queued", "job-b", extra={"job_id": "job-b"})
    try:
        raise ValueError('broken "quote"\nand a newline')
    except ValueError:
        log.exception("failed")
    queued, failed = entries(captured)  # the newline stayed inside one JSON line
    assert queued["job_id"] == "job-b" and queued["message"] == "job job-b queued"
    assert queued["time"].endswith("+00:00")
    assert failed["level"] == "ERROR"
    assert 'ValueError: broken "quote"\nand a newline' in failed["exception"]


def test_text_format_is_the_default() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure("INFO")
        buffer = io.StringIO()
        root.handlers[0].setStream(buffer)
        logging.getLogger("backend.server").info("serving")
        assert buffer.getvalue().rstrip().endswith("INFO backend.server: serving")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def test_uncaught_exceptions_become_lines(captured) -> None:
    saved = (threading.excepthook, sys.excepthook)
    try:
        logs.log_uncaught()

        def crash() -> None:
            raise RuntimeError("nobody caught me")

        thread = threading.Thread(target=crash, name="doomed")
        thread.start()
        thread.join(5)
    finally:
        threading.excepthook, sys.excepthook = saved
    (entry,) = entries(captured)
    assert entry["level"] == "CRITICAL" and "doomed" in entry["message"]
    assert "RuntimeError: nobody caught me" in entry["exception"]
