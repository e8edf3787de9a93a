"""A job's cancellation: the token the queue sets and every long loop checks.

A leaf module (stdlib only) so the geometry pipeline, the models and the job queue can all
honour a cancel without importing each other.
"""

from __future__ import annotations

import threading


class Cancelled(Exception):  # noqa: N818 - reads as "raise Cancelled"
    """Raised inside a model's or the pipeline's step loop when its job was cancelled."""


class CancelToken:
    """Set by the queue when a job is cancelled; checked by the model at every step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled on request")
