"""Logging set-up for the backend: plain text, or one JSON object per line, with the job id.

``job_context(job_id)`` marks everything logged inside it (by any logger, the models' own
included) as concerning that job: a ``contextvars`` variable, so it follows the worker thread
that runs the job and nothing else (each new thread starts with it unset). ``JobIdFilter`` sits
on the handlers and copies it onto every record as ``record.job_id``; a call can also name its
job directly with ``extra={"job_id": ...}`` (a thread that handles many jobs, such as the
server's). ``configure`` installs one stderr handler, in text or JSON (``serve --log-json``);
a JSON line always has ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and
``thread``, and ``job_id`` and ``exception`` when there are any; ``log_uncaught`` makes what
would be a bare traceback on stderr (an exception no code caught, in any thread) such a line too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dreamcad_job_id", default=None
)


@contextlib.contextmanager
def job_context(job_id: str | None) -> Iterator[None]:
    """Everything logged in this block, in this thread, concerns ``job_id``."""
    token = _current_job.set(job_id)
    try:
        yield
    finally:
        _current_job.reset(token)


def current_job_id() -> str | None:
    return _current_job.get()


class JobIdFilter(logging.Filter):
    """Give each record a ``job_id``: the one named in ``extra``, else the job context's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "job_id", None) is None:
            record.job_id = _current_job.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks included, as a string)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        job_id = getattr(record, "job_id", None)
        if job_id is not None:
            entry["job_id"] = job_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a message argument that JSON cannot hold must not lose the line.
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str | int = "INFO", *, json_lines: bool = False) -> None:
    """Replace the root logger's handlers with one stderr handler in text or JSON lines."""
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(JobIdFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)


def log_uncaught() -> None:
    """Exceptions nothing caught (main thread or any other) are logged, not printed raw."""
    uncaught = logging.getLogger("backend.uncaught")

    def in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread else "?"
        exc_info = (args.exc_type, args.exc_value, args.exc_traceback)
        uncaught.critical("uncaught exception in thread %s", name, exc_info=exc_info)

    def in_main(exc_type, exc_value, traceback) -> None:
        uncaught.critical("uncaught exception", exc_info=(exc_type, exc_value, traceback))

    threading.excepthook = in_thread
    sys.excepthook = in_main
