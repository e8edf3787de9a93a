"""Connect the front door to a Ray cluster and give the server its Ray worker pool.

``serve --ray ADDRESS`` calls ``cluster_workers`` before the server is built: it joins the
cluster (``ray.init``; ``auto`` finds a cluster started on this machine with ``ray start``) and
returns the factory the server calls with its queue. The front door itself runs no jobs; the
cluster's nodes must have this package installed (the actors import it there).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import ray

from backend.cluster.dispatcher import NAMESPACE, OnEvent, RayDispatcher
from backend.jobs.pool import WorkersFactory
from backend.jobs.queue import JobQueue
from backend.models.registry import ModelRegistry
from backend.settings import Settings


class ClusterUnavailableError(Exception):
    """No Ray cluster could be joined at the address given; the message says why."""


def cluster_workers(
    address: str,
    resource: str,
    settings: Settings,
    weights_paths: dict[str, Path] | None = None,
    on_event: OnEvent | None = None,
) -> WorkersFactory:
    """Join the cluster at ``address``; the factory of a dispatcher over ``resource`` units."""
    try:
        ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING,
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ClusterUnavailableError(
            f"cannot join the Ray cluster at {address}: {error}"
        ) from None
    weights = {key: str(path) for key, path in (weights_paths or {}).items()}

    def factory(queue: JobQueue, registry: ModelRegistry, stop: threading.Event) -> RayDispatcher:
        return RayDispatcher(queue, registry, stop, resource=resource,
                             budget_mb=settings.vram_budget_mb, weights_paths=weights,
                             on_event=on_event)

    return factory
