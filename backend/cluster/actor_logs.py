"""Send what a Ray actor logs while it runs a job back to the front door, job by job.

Locally a job's lines land in the backend's own log with its job id (logs.py). An actor's
process is on another machine, and what it logs stays in Ray's files on that node; so the actor
puts each line logged under a job's ``logs.job_context`` (by any logger, the models' own
included) into that job's stream as ``("log", level, logger, message)``, and the dispatcher
logs it again on the front door under the same logger name with the job id
(``relog``): one log, JSON lines included, for the whole farm.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Iterator

from backend import logs

FORWARDED_LEVEL = logging.INFO  # what locally reaches the backend's log by default


class JobLogForwarder(logging.Handler):
    """A root handler that routes records of registered jobs onto their streams' queues."""

    _installed: JobLogForwarder | None = None
    _install_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__(FORWARDED_LEVEL)
        self._queues: dict[str, queue.Queue[tuple]] = {}

    @classmethod
    def install(cls) -> JobLogForwarder:
        """The process's forwarder (one root handler however many actors the process hosts)."""
        with cls._install_lock:
            if cls._installed is None:
                cls._installed = cls()
                root = logging.getLogger()
                root.addHandler(cls._installed)
                # A Ray worker leaves the root at WARNING: the job's INFO lines would never
                # reach any handler.
                if root.getEffectiveLevel() > FORWARDED_LEVEL:
                    root.setLevel(FORWARDED_LEVEL)
            return cls._installed

    @contextlib.contextmanager
    def forwarding(self, job_id: str, events: queue.Queue[tuple]) -> Iterator[None]:
        """Lines logged for ``job_id`` go to ``events`` until the block ends."""
        self._queues[job_id] = events
        try:
            yield
        finally:
            self._queues.pop(job_id, None)

    def emit(self, record: logging.LogRecord) -> None:
        job_id = getattr(record, "job_id", None) or logs.current_job_id()
        events = self._queues.get(job_id) if job_id else None
        if events is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a bad format string: the line, not the job, is lost
            self.handleError(record)
            return
        events.put(("log", record.levelno, record.name, message))


def relog(job_id: str, level: int, logger: str, message: str, where: str) -> None:
    """One forwarded line into this process's log, under its own logger, with the job id."""
    logging.getLogger(logger).log(level, "%s", message, extra={"job_id": job_id, "actor": where})
