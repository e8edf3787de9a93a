"""Which actor runs a job: pure rules over a snapshot of the actors, no Ray.

A job goes to a free actor that already holds its model (no load at all); otherwise to the
least-loaded free actor with room in its VRAM budget for the model; otherwise to the
least-loaded free actor, whose model cache then unloads its least recently used models
(registry.ModelCache). "Least loaded" is the fewest MB of models held, then the fewest jobs run,
so work spreads over idle actors instead of piling on the first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActorView:
    """What placement knows of one actor: ``loaded`` models oldest use first, their MB."""

    name: str
    busy: bool
    loaded: tuple[str, ...] = ()
    loaded_mb: int = 0
    budget_mb: int | None = None
    jobs_run: int = 0

    def has_room_for(self, needed_mb: int) -> bool:
        return self.budget_mb is None or self.loaded_mb + needed_mb <= self.budget_mb


@dataclass(frozen=True)
class Placement:
    actor: str
    model_loaded: bool  # True: the actor holds the model already (a cache hit)


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
