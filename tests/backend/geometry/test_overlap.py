"""overlap.Beside: a call on another thread, its value or its error collected later; the
pipeline makes the bake's source normals that way on the CPU path."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from backend.geometry import overlap, pipeline, tangents
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from tests.support.analytic_meshes import analytic_color


def test_beside_runs_on_another_thread_and_hands_back_value_or_error() -> None:
    def where(offset: int) -> tuple[str, int]:
        return threading.current_thread().name, offset + 1

    assert overlap.Beside(where, 41, name="probe").result() == ("probe", 42)

    def fails() -> None:
        raise ValueError("from the thread")

    beside = overlap.Beside(fails)
    with pytest.raises(ValueError, match="from the thread"):
        beside.result()


def test_pipeline_makes_the_source_normals_beside_the_decimation(sphere_mesh, monkeypatch):
    vertices, faces = sphere_mesh
    calls: list[tuple[str, int]] = []
    real = tangents.vertex_normals

    def recorded(*args):  # the real function, its thread and face count noted
        calls.append((threading.current_thread().name, len(args[1])))
        return real(*args)

    monkeypatch.setattr(pipeline.tangents, "vertex_normals", recorded)
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    result = run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256))
    source_calls = [name for name, count in calls if count == len(faces)]
    assert source_calls == ["normals"]  # once, and not on the main thread
    assert result.faces <= 1100 and np.isfinite(result.quality["mean_distance_pct"])


def test_the_overlapped_kernels_release_the_gil() -> None:
    """The normals' kernel and the decimator's serial quadric set-up both release the GIL: held
    by either, the other thread would wait instead of using the idle core."""
    from backend.geometry import qem

    assert tangents._accumulate_normals.targetoptions.get("nogil") is True
    assert qem.prepare_quadrics.targetoptions.get("nogil") is True


def test_the_device_path_measures_the_distances_beside_its_stages(sphere_mesh, monkeypatch):
    vertices, faces = sphere_mesh
    calls: list[str] = []
    real = pipeline.quality.surface_distance

    def recorded(*args):
        calls.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(pipeline.quality, "surface_distance", recorded)
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    options = PipelineOptions(target_faces=1000, texture_size=256, geometry_path="torch")
    beside = run_pipeline(raw, options)  # the torch stages on the CPU device: the device path
    assert overlap.kernels_threadsafe()  # omp or tbb here, as on the GPU boxes
    assert calls == ["quality"]  # once, on its own thread
    monkeypatch.setattr(pipeline.overlap, "kernels_threadsafe", lambda: False)
    in_place = run_pipeline(raw, options)
    assert calls == ["quality", "MainThread"]
    figures = ("mean_distance_pct", "max_distance_pct")
    assert [beside.quality[k] for k in figures] == [in_place.quality[k] for k in figures]
    assert beside.asset == in_place.asset


def test_the_distance_kernels_release_the_gil() -> None:
    """Measured beside the device stages, they must not hold the GIL the stages' launches need."""
    from backend.geometry import grid_knn, quality, transfer

    for kernel in (grid_knn._query, quality._centroids, transfer._closest_of_candidates):
        assert kernel.targetoptions.get("nogil") is True


def test_the_device_bake_is_queued_before_the_unwrap_with_the_same_answer(
    sphere_mesh, monkeypatch
):
    # The closest faces and splat columns queued on the reduced mesh before its UVs exist, on
    # the pipeline's own thread (a thread beside the unwrap took its GIL): the same asset bytes
    # as bake() making them itself on the unwrapped mesh.
    vertices, faces = sphere_mesh
    threads: list[str] = []
    real = pipeline.bake.prepare_on_device

    def recorded(*args):
        threads.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(pipeline.bake, "prepare_on_device", recorded)
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    options = PipelineOptions(target_faces=1000, texture_size=256, geometry_path="torch")
    early = run_pipeline(raw, options)
    caller = threading.current_thread().name
    assert threads == [caller]
    monkeypatch.setattr(pipeline, "_prepare_bake", lambda *args: None)
    in_bake = run_pipeline(raw, options)
    assert threads == [caller]  # not called again: bake() searched itself
    assert early.asset == in_bake.asset


def test_a_beside_call_may_leave_cores_to_the_caller() -> None:
    import numba

    def threads() -> int:
        return numba.get_num_threads()

    assert overlap.Beside(threads, spare=1).result() == max(1, numba.config.NUMBA_NUM_THREADS - 1)
    assert overlap.Beside(threads, spare=10_000).result() == 1
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # the caller's untouched


def test_quick_handoff_nests_and_restores_the_switch_interval() -> None:
    import sys

    before = sys.getswitchinterval()
    with overlap.quick_handoff():
        assert sys.getswitchinterval() == min(overlap.HANDOFF_S, before)
        with overlap.quick_handoff():  # a second job's pipeline inside the first's
            pass
        assert sys.getswitchinterval() == min(overlap.HANDOFF_S, before)  # still the first's
    assert sys.getswitchinterval() == before


def test_the_device_path_hands_the_gil_over_quickly(sphere_mesh, monkeypatch):
    import sys

    seen: list[float] = []
    real = pipeline.uv.unwrap

    def recorded(*args, **kwargs):
        seen.append(sys.getswitchinterval())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.uv, "unwrap", recorded)
    vertices, faces = sphere_mesh
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256, geometry_path="torch"))
    run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256))  # the CPU path
    assert seen == [overlap.HANDOFF_S, sys.getswitchinterval()]


def test_fewer_cores_leaves_cores_within_and_restores_after() -> None:
    import numba

    numba.set_num_threads(2)
    try:
        with overlap.fewer_cores(1, from_threads=2):
            assert numba.get_num_threads() == 1
        assert numba.get_num_threads() == 2
        with overlap.fewer_cores(1):  # two threads are below the default threshold: kept
            assert numba.get_num_threads() == 2
        with pytest.raises(RuntimeError), overlap.fewer_cores(1, from_threads=2):
            raise RuntimeError("restored on the way out too")
        assert numba.get_num_threads() == 2
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def test_the_decimation_leaves_a_core_to_the_normals_beside_it(sphere_mesh, monkeypatch):
    """On the CPU path the decimator's kernels run on one thread fewer while the source normals
    are made beside them (a static chunk sharing that core held every kernel back): the same
    asset, the decimator's answer not depending on its thread count."""
    import numba

    vertices, faces = sphere_mesh
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    options = PipelineOptions(target_faces=1000, texture_size=256)
    threads: list[int] = []
    real = pipeline.decimate.decimate

    def recorded(*args, **kwargs):
        threads.append(numba.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.decimate, "decimate", recorded)
    numba.set_num_threads(2)
    try:
        as_built = run_pipeline(raw, options)  # 2 threads: below fewer_cores' threshold
        real_fewer = overlap.fewer_cores
        monkeypatch.setattr(
            pipeline.overlap, "fewer_cores", lambda spare: real_fewer(spare, from_threads=2)
        )
        one_left = run_pipeline(raw, options)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert threads == [2, 1]
    assert one_left.asset == as_built.asset


def test_the_device_path_measures_the_distances_after_the_unwrap(sphere_mesh, monkeypatch):
    """The unwrap is the device path's CPU step on the critical path: the distance figures'
    thread starts once it is done, not beside it."""
    vertices, faces = sphere_mesh
    events: list[str] = []
    unwrap, distance = pipeline.uv.unwrap, pipeline.quality.surface_distance

    def unwrap_recorded(*args, **kwargs):
        events.append("unwrap")
        result = unwrap(*args, **kwargs)
        events.append("unwrapped")
        return result

    def distance_recorded(*args):
        events.append("distance")
        return distance(*args)

    monkeypatch.setattr(pipeline.uv, "unwrap", unwrap_recorded)
    monkeypatch.setattr(pipeline.quality, "surface_distance", distance_recorded)
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256, geometry_path="torch"))
    assert events == ["unwrap", "unwrapped", "distance"]
