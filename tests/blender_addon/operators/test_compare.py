"""operators/compare.py with compare_row.py: one prompt to two models on a real backend, the
labelled row in real bpy, Keep as one undo step, and a backend restart mid-compare.

The backend lists a second text model, ``procedural-tall``, plugged in as any third-party model
is (tests/support/tall_procedural.py): the built-in models each take another input.
"""

from __future__ import annotations

import json
from pathlib import Path

import bpy
import pytest
from mathutils import Vector

from tests.blender_addon.conftest import FAST, pump, reset_runtime, text_job
from tests.support.backend_process import BackendProcess
from tests.support.tall_procedural import MODEL_ID as TALL
from tests.support.tall_procedural import plugin_env

MEDIUM = {"resolution": 96, "steps": 48}  # a few seconds each: long enough to kill mid-way
COMPARE = "Dream CAD Compare"


def connect(addon, address: str) -> None:
    addon.preferences.preferences().backend_address = address
    bpy.ops.dreamcad.connect()
    assert addon.runtime.STATE.session.connected
    bpy.ops.dreamcad.select_model(model_id="procedural")


def tick_models(*model_ids: str) -> None:
    for model_id in model_ids:
        bpy.ops.dreamcad.compare_toggle_model(model_id=model_id)


def row(addon) -> list:
    return addon.compare_row.row_objects(next(iter(rows_in_file())))


def rows_in_file() -> dict:
    return dict(bpy.data.collections[COMPARE]["dreamcad_compare_rows"])


def world_x_bounds(obj) -> tuple[float, float]:
    xs = [(obj.matrix_world @ Vector(c)).x for c in obj.bound_box]
    return min(xs), max(xs)


def test_one_prompt_two_models_land_side_by_side_labelled(fresh, plugin_backend) -> None:
    connect(fresh, plugin_backend.address)
    text_job(fresh, "red torus", FAST)
    tick_models("procedural", TALL, "inflate")  # inflate takes images: left out of a text compare
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.0)
    assert bpy.ops.dreamcad.compare() == {"FINISHED"}  # background mode: waits for both

    results = row(fresh)
    assert [o["dreamcad_compare_model"] for o in results] == ["procedural", TALL]
    assert all(o.users_collection[0].name == COMPARE for o in results)
    session = fresh.runtime.STATE.session
    jobs = [session.jobs[o["dreamcad_job_id"]] for o in results]
    assert len({job.seed for job in jobs}) == 1  # the same seed for every model
    assert len({job.request_key for job in jobs}) == 2
    for obj, job in zip(results, jobs, strict=True):
        manifest = job.manifest
        assert obj["dreamcad_compare_faces"] == manifest.faces == len(obj.data.polygons)
        assert obj["dreamcad_compare_seconds"] == pytest.approx(sum(manifest.timings_s.values()),
                                                                abs=1e-3)  # fmt: skip
        assert obj["dreamcad_compare_peak_vram_mb"] == -1.0  # a CPU backend: none to measure
        assert json.loads(obj["dreamcad_settings"])["parameters"] == FAST  # shared parameters
        (label,) = fresh.compare_row.labels_of(obj)
        assert label.type == "FONT" and label.users_collection[0].name == COMPARE
        text = label.data.body
        assert text.startswith(f"{job.model}\n") and f"{manifest.faces:,} faces" in text
        assert "no GPU" in text
        low, high = fresh.compare_row._world_bounds(obj)
        assert label.matrix_world.translation.z > high.z  # above its result
        assert low.x <= label.matrix_world.translation.x <= high.x
    first, second = (world_x_bounds(o) for o in results)
    assert first[0] == pytest.approx(1.0, abs=1e-4)  # the row starts at the 3D cursor
    assert second[0] > first[1]  # spaced by their bounds: no overlap
    assert results[1].dimensions.z > results[0].dimensions.z  # the tall one is taller
    assert all(o.location.y == pytest.approx(2.0) for o in results)


def test_compare_needs_two_models_that_take_the_input(fresh, plugin_backend) -> None:
    connect(fresh, plugin_backend.address)
    text_job(fresh, "blue cube", FAST)
    tick_models("procedural", "inflate")
    with pytest.raises(RuntimeError, match="at least 2 models that take text input; 1 ticked"):
        bpy.ops.dreamcad.compare()
    assert not fresh.runtime.STATE.plans and COMPARE not in bpy.data.collections


def test_backend_restart_mid_compare_loses_nothing(fresh, tmp_path: Path) -> None:
    """Killed mid-compare, and the add-on's memory gone too: the compare comes back from the
    backend's jobs (their request_key) and both results still land in the row."""
    backend = BackendProcess(tmp_path / "backend", env=plugin_env()).start()
    try:
        fresh.preferences.preferences().reply_timeout_s = 2.0
        connect(fresh, backend.address)
        text_job(fresh, "green cone", MEDIUM)
        tick_models("procedural", TALL)
        compare_id, msg_ids, _names = fresh.operators.compare.send_compare(bpy.context)
        plans = [fresh.runtime.STATE.plans[m] for m in msg_ids]
        jobs = fresh.runtime.STATE.session.jobs

        def first_is_running() -> bool:
            job = jobs.get(plans[0].job_id)
            return job is not None and job.progress is not None

        pump(fresh, first_is_running)
        assert not any(plan.done for plan in plans)  # killed with both still to finish
        backend.kill()
        reset_runtime(fresh)  # nothing of the compare is left in the add-on's memory

        backend = BackendProcess(backend.data_dir, port=backend.port, env=plugin_env()).start()
        connect(fresh, backend.address)
        compares = fresh.compare_jobs.this_file_compares
        pump(fresh, lambda: len(fresh.compare_row.row_objects(compare_id)) == 2)
    finally:
        backend.stop()
    (compare,) = compares(fresh.runtime.STATE.session)
    assert compare.compare_id == compare_id
    assert [e.key.model for e in compare.entries] == ["procedural", TALL]
    assert all(e.job.state == "succeeded" for e in compare.entries)
    results = fresh.compare_row.row_objects(compare_id)
    assert [o["dreamcad_job_id"] for o in results] == [e.job.job_id for e in compare.entries]
    assert all(len(fresh.compare_row.labels_of(o)) == 1 for o in results)
    assert not fresh.runtime.STATE.offered  # landed in the row, not offered as strays


# Last in this file on purpose: after ed.undo/ed.redo in bpy-as-a-module, a later test's
# view_layer.objects iteration crashed Blender 5.0.1 once (test_mesh_jobs.py says the same).
def test_keep_moves_one_result_and_clears_the_row_in_one_undo_step(fresh, plugin_backend):
    connect(fresh, plugin_backend.address)
    text_job(fresh, "yellow capsule", FAST)
    tick_models("procedural", TALL)
    bpy.context.scene.cursor.location = (-3.0, 0.0, 0.0)
    assert bpy.ops.dreamcad.compare() == {"FINISHED"}
    _first, second = row(fresh)
    names = {o.name for o in bpy.data.objects}
    kept_name = second.name
    bpy.ops.ed.undo_push(message="after comparing")

    # As the panel's button runs it: with the undo push that its UNDO flag asks for (a call
    # from Python pushes none unless told).
    assert bpy.ops.dreamcad.compare_keep("EXEC_DEFAULT", True, object_name=kept_name) == {
        "FINISHED"}
    kept = bpy.data.objects[kept_name]
    assert [o.name for o in bpy.data.objects] == [kept_name]  # the rest and the labels went
    assert [c.name for c in kept.users_collection] == ["Dream CAD"]
    assert tuple(kept.location) == pytest.approx((-3.0, 0.0, 0.0))  # at the row's start
    assert COMPARE not in bpy.data.collections
    assert kept["dreamcad_compare_model"] == TALL  # its figures stay recorded
    assert "dreamcad_compare_id" not in kept

    assert bpy.ops.ed.undo() == {"FINISHED"}  # one step brings the whole row back
    assert {o.name for o in bpy.data.objects} == names
    assert len(row(fresh)) == 2
    assert bpy.ops.ed.redo() == {"FINISHED"}
    assert [o.name for o in bpy.data.objects] == [kept_name]
