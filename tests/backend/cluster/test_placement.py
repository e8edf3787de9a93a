"""Placement rules (backend/jobs/placement.py): pure functions over actor snapshots."""

from __future__ import annotations

from backend.jobs.placement import ActorView, place


def test_a_free_actor_holding_the_model_wins_over_an_emptier_one() -> None:
    actors = [
        ActorView("empty", busy=False),
        ActorView("holder", busy=False, loaded=("triposr",), loaded_mb=6000, jobs_run=9),
    ]
    placement = place(actors, "triposr", 6000)
    assert placement is not None and placement.actor == "holder" and placement.model_loaded


def test_a_busy_holder_does_not_block_the_job() -> None:
    actors = [
        ActorView("holder", busy=True, loaded=("triposr",), loaded_mb=6000),
        ActorView("other", busy=False, loaded=("sf3d",), loaded_mb=7000),
    ]
    placement = place(actors, "triposr", 6000)
    assert placement is not None and placement.actor == "other" and not placement.model_loaded


def test_otherwise_the_least_loaded_actor_with_room() -> None:
    actors = [
        ActorView("full", busy=False, loaded=("a",), loaded_mb=9000, budget_mb=10000),
        ActorView("half", busy=False, loaded=("b",), loaded_mb=5000, budget_mb=10000),
        ActorView("light", busy=False, loaded=("c",), loaded_mb=1000, budget_mb=10000),
    ]
    assert place(actors, "d", 4000).actor == "light"


def test_with_no_room_anywhere_the_least_loaded_evicts() -> None:
    actors = [
        ActorView("more", busy=False, loaded=("a", "b"), loaded_mb=9000, budget_mb=10000),
        ActorView("less", busy=False, loaded=("c",), loaded_mb=8000, budget_mb=10000),
    ]
    assert place(actors, "d", 5000).actor == "less"


def test_room_beats_load_when_only_one_has_room() -> None:
    actors = [
        ActorView("light-but-small", busy=False, loaded_mb=1000, budget_mb=2000),
        ActorView("heavier-with-room", busy=False, loaded_mb=3000, budget_mb=24000),
    ]
    assert place(actors, "m", 5000).actor == "heavier-with-room"


def test_equal_load_spreads_by_jobs_run_and_none_when_all_busy() -> None:
    actors = [ActorView("a", busy=False, jobs_run=3), ActorView("b", busy=False, jobs_run=1)]
    assert place(actors, "m", 0).actor == "b"
    assert place([ActorView("a", busy=True)], "m", 0) is None
