"""Which worker runs which job: pure rules over snapshots of the workers, shared by both paths.

``place`` is one job's choice (the Ray dispatcher's, backend/cluster): a free worker that already
holds its model (no load at all); otherwise the least-loaded free worker with room in its VRAM
budget for the model; otherwise the least-loaded free worker, whose model cache then unloads its
least recently used models (registry.ModelCache). "Least loaded" is the fewest MB of models
held, then the fewest jobs run, so work spreads over idle workers instead of piling on the first.

``assign`` matches every free local worker (device threads, jobs/device_placer.py) with the
queued jobs at once, so each model is loaded on as few devices as the stream needs:

1. a job passed over too often (``QueuedJob.overdue``) goes first, so affinity cannot starve it;
2. affinity: each free worker takes the first job of the top priority whose model it holds;
3. the rest, in claim order, by ``place`` among the free workers left: no worker stays idle
   while a job it may run waits (work conservation).

A worker may run a job when the job's model fits its budget; a model that fits no worker's
budget goes only to the workers with the largest one (it evicts all they hold, as one device
did before there were several).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActorView:
    """What placement knows of one worker: ``loaded`` models oldest use first, their MB."""

    name: str
    busy: bool
    loaded: tuple[str, ...] = ()
    loaded_mb: int = 0
    budget_mb: int | None = None
    jobs_run: int = 0

    def has_room_for(self, needed_mb: int) -> bool:
        return self.budget_mb is None or self.loaded_mb + needed_mb <= self.budget_mb

    def fits(self, needed_mb: int) -> bool:
        """The model could be loaded here at all (everything else unloaded)."""
        return self.budget_mb is None or needed_mb <= self.budget_mb


@dataclass(frozen=True)
class Placement:
    actor: str
    model_loaded: bool  # True: the actor holds the model already (a cache hit)


@dataclass(frozen=True)
class QueuedJob:
    """A queued job as ``assign`` sees it (given in claim order)."""

    job_id: str
    model: str
    priority: int = 0
    needed_mb: int = 0
    overdue: bool = False


def place(actors: list[ActorView], model: str, needed_mb: int) -> Placement | None:
    """The actor for a job on ``model`` (needing ``needed_mb``); None when none is free."""
    free = [actor for actor in actors if not actor.busy]
    if not free:
        return None

    def load(actor: ActorView) -> tuple[int, int, str]:
        return actor.loaded_mb, actor.jobs_run, actor.name

    holders = [actor for actor in free if model in actor.loaded]
    if holders:
        return Placement(min(holders, key=load).name, model_loaded=True)
    with_room = [actor for actor in free if actor.has_room_for(needed_mb)]
    return Placement(min(with_room or free, key=load).name, model_loaded=False)


def may_run(actor: ActorView, needed_mb: int, everyone: list[ActorView]) -> bool:
    """``actor`` may run a model of ``needed_mb``: it fits its budget, or fits no one's and
    ``actor`` has the largest budget of ``everyone`` (busy workers included)."""
    if actor.fits(needed_mb):
        return True
    if any(other.fits(needed_mb) for other in everyone):
        return False
    return actor.budget_mb == max(other.budget_mb or 0 for other in everyone)


def assign(workers: list[ActorView], jobs: list[QueuedJob]) -> dict[str, Placement]:
    """Free worker name -> the job it should take now (``Placement.actor`` is the job id)."""
    free = sorted((w for w in workers if not w.busy), key=lambda w: w.name)
    given: dict[str, Placement] = {}
    taken: set[str] = set()

    def take(worker: ActorView, job: QueuedJob) -> None:
        given[worker.name] = Placement(job.job_id, model_loaded=job.model in worker.loaded)
        taken.add(job.job_id)

    def place_among_free(job: QueuedJob) -> None:
        candidates = [
            w for w in free if w.name not in given and may_run(w, job.needed_mb, workers)
        ]
        chosen = place(candidates, job.model, job.needed_mb)
        if chosen is not None:
            take(next(w for w in candidates if w.name == chosen.actor), job)

    for job in jobs:
        if job.overdue:
            place_among_free(job)
    top = max((job.priority for job in jobs), default=0)
    for worker in free:
        if worker.name in given:
            continue
        for job in jobs:
            if job.priority != top:
                break  # claim order puts higher priorities first
            if (
                job.job_id not in taken
                and job.model in worker.loaded
                and may_run(worker, job.needed_mb, workers)
            ):
                take(worker, job)
                break
    for job in jobs:
        if len(given) == len(free):
            break
        if job.job_id not in taken:
            place_among_free(job)
    return given
