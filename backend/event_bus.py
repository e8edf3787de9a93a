"""Job events from any thread to the server loop: one queue and one wake-up socket pair.

Workers (and the server's own handlers, on cancel or delete) publish events from whatever thread
they run on; only the server thread may touch the ROUTER socket. ``publish`` puts the event on a
thread-safe queue and writes one byte to the bell, a plain OS socket pair whose read end the
server's ``zmq.Poller`` watches. Nothing here is a ZeroMQ socket, so no publishing thread ever
owns one that could keep the ZeroMQ context from terminating at shutdown; ``close`` closes both
ends.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading

from shared_protocol.messages import Message


class EventBus:
    """Thread-safe publish; ``drain`` and ``fileno`` are for the server thread only."""

    def __init__(self) -> None:
        self._events: queue.SimpleQueue[tuple[str, Message]] = queue.SimpleQueue()
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._closed = threading.Event()

    def publish(self, job_id: str, message: Message) -> None:
        self._events.put((job_id, message))
        if self._closed.is_set():
            return
        # A full bell (many unread rings) or a closing one: the loop drains the queue anyway.
        with contextlib.suppress(OSError):
            self._writer.send(b"\0")

    def fileno(self) -> int:
        """The read end, for ``zmq.Poller.register``."""
        return self._reader.fileno()

    def drain(self) -> list[tuple[str, Message]]:
        """Every event published so far, oldest first (never waits)."""
        try:
            while self._reader.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        items = []
        while True:
            try:
                items.append(self._events.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        self._closed.set()
        self._reader.close()
        self._writer.close()
