"""Who gets a job's events: at most one subscription per (client, job), dropped when it ends.

A client is subscribed by its submit (``watch``) or by ``status_request {watch: true}``. Watching
the same job again from the same client changes nothing (its events keep the ``parent_id`` of
the first request that subscribed), so a client that watches a job a thousand times still gets
each event once. A job's subscriptions end with its result or failure; a client's end when the
ROUTER reports it gone. Server-thread only.
"""

from __future__ import annotations


class Subscriptions:
    """job id -> {client identity: parent msg_id}."""

    def __init__(self) -> None:
        self._by_job: dict[str, dict[bytes, str]] = {}

    def add(self, job_id: str, identity: bytes, parent_id: str) -> None:
        self._by_job.setdefault(job_id, {}).setdefault(identity, parent_id)

    def of(self, job_id: str) -> list[tuple[bytes, str]]:
        """(identity, parent_id) of every client watching ``job_id``."""
        return list(self._by_job.get(job_id, {}).items())

    def end_job(self, job_id: str) -> None:
        self._by_job.pop(job_id, None)

    def drop_client(self, identity: bytes) -> None:
        """Forget a client that has gone (its socket closed or reconnected as someone new)."""
        for job_id in [j for j, clients in self._by_job.items() if identity in clients]:
            clients = self._by_job[job_id]
            del clients[identity]
            if not clients:
                del self._by_job[job_id]

    def __len__(self) -> int:
        return sum(len(clients) for clients in self._by_job.values())
