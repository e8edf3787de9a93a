"""What the server needs of the workers that run its jobs, wherever they run.

The local ``WorkerSupervisor`` (threads, one per device) and the Ray dispatcher
(``backend.cluster``, actors across a cluster) both are a ``WorkerPool``; the server starts one,
calls ``check`` from its loop, reports ``health`` in ping and ``join``s it at shutdown. A
``WorkersFactory`` builds one for a server's queue, registry and stop flag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from backend.jobs.queue import JobQueue
from backend.models.registry import ModelRegistry
from shared_protocol.messages import WorkerHealth

if TYPE_CHECKING:
    from backend.jobs.worker import Worker


class WorkerPool(Protocol):
    def start(self) -> None: ...

    def check(self) -> None: ...

    def health(self) -> tuple[WorkerHealth, ...]: ...

    def workers(self) -> tuple[Worker, ...]:
        """The local worker threads (the model shelf's load / release go to them)."""
        ...

    def join(self, timeout_s: float) -> None: ...


WorkersFactory = Callable[[JobQueue, ModelRegistry, threading.Event], WorkerPool]
