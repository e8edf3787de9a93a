"""The torch geometry path (clean, parallel QEM, bake steps) against the numba path.

These run the torch code on the CPU (the same code a CUDA job runs), on small meshes; the
CUDA tests at the end run only where a GPU is present.
"""

from __future__ import annotations

import cProfile
import itertools
import pstats

import numpy as np
import pytest
from scipy.spatial import cKDTree

from backend.geometry import (
    clean,
    decimate,
    dilate,
    edge_collapse,
    geometry_path,
    quadrics,
    quality,
    tolerances,
)
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from tests.support.analytic_meshes import analytic_color

torch = pytest.importorskip("torch")
from backend.geometry import torch_clean, torch_dilate, torch_qem  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _turned_faces(source: tuple[np.ndarray, np.ndarray], result: tuple) -> int:
    """Faces of ``result`` facing away from the nearest face of ``source``."""
    def normals(vertices, faces):
        p = vertices[faces].astype(np.float64)
        return np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p.mean(axis=1)

    src_n, src_c = normals(*source)
    out_n, out_c = normals(*result)
    nearest = cKDTree(src_c).query(out_c)[1]
    return int(np.count_nonzero(np.einsum("ij,ij->i", src_n[nearest], out_n) <= 0))


@pytest.fixture(scope="module")
def blob_clean(blob_mesh):
    return clean.clean_mesh(*blob_mesh)


@pytest.fixture(scope="module")
def blob_cpu(blob_clean):
    return decimate.decimate(blob_clean.vertices, blob_clean.faces, 3000)


def test_parallel_qem_matches_the_cpu_decimator(blob_mesh, blob_clean, blob_cpu):
    result = decimate.decimate(blob_clean.vertices, blob_clean.faces, 3000, device="cpu")
    assert decimate.within_tolerance(len(result.faces), 3000)
    topology = quality.topology(result.vertices, result.faces)
    assert topology["watertight"] and topology["pieces"] == 1
    assert topology["euler"] == 2 and topology["zero_area_faces"] == 0
    assert _turned_faces(blob_mesh, (result.vertices, result.faces)) == 0
    ours = quality.surface_distance(blob_mesh, (result.vertices, result.faces))
    cpu = quality.surface_distance(blob_mesh, (blob_cpu.vertices, blob_cpu.faces))
    assert ours["mean_distance_pct"] <= 1.1 * cpu["mean_distance_pct"]
    assert ours["max_distance_pct"] <= 1.5 * cpu["max_distance_pct"]
    # The merge map is complete: every input vertex names a surviving vertex.
    assert result.owner is not None and result.owner.min() >= 0
    assert result.owner.max() < len(result.vertices)


def test_parallel_qem_keeps_an_open_border_and_exact_attributes(sphere_mesh):
    vertices, faces = sphere_mesh
    cap = faces[vertices[faces].mean(axis=1)[:, 1] > -0.3]
    cleaned = clean.clean_mesh(vertices, cap)
    before = quality.topology(cleaned.vertices, cleaned.faces)
    tag = cleaned.vertices[:, :2] * 3.0
    result = decimate.decimate(cleaned.vertices, cleaned.faces, 1500, {"tag": tag}, "cpu")
    after = quality.topology(result.vertices, result.faces)
    assert decimate.within_tolerance(len(result.faces), 1500)
    assert after["pieces"] == 1 and after["non_manifold_edges"] == 0
    assert after["euler"] == before["euler"]
    np.testing.assert_allclose(result.attributes["tag"], result.vertices[:, :2] * 3.0, atol=1e-5)


def test_refusals_and_placement_are_the_cpu_decimators():
    rng = np.random.default_rng(5)
    pos = rng.normal(size=(400, 3))
    tri = np.stack([rng.choice(400, 3, replace=False) for _ in range(3000)])
    moving = tri[np.arange(3000), rng.integers(0, 3, 3000)]
    place = pos[moving] + rng.normal(scale=rng.choice([0.01, 0.3, 3.0], 3000)[:, None],
                                     size=(3000, 3))  # fmt: skip
    ours = torch_qem._faces_ok(torch.as_tensor(pos), torch.as_tensor(tri),
                               torch.as_tensor(moving), torch.as_tensor(place)).numpy()  # fmt: skip
    theirs = np.array([
        edge_collapse.face_ok(pos, *tri[i], moving[i], *place[i], tolerances.FLIP_COS,
                              tolerances.MIN_FACE_QUALITY)
        for i in range(3000)
    ])  # fmt: skip
    assert 0 < theirs.sum() < len(theirs)  # both answers occur
    np.testing.assert_array_equal(ours, theirs)
    planes = rng.normal(size=(3000, 3, 4))
    q = np.zeros((3000, 10))
    for k in range(3):
        a, b, c, d = planes[:, k].T
        q += np.stack([a * a, a * b, a * c, a * d, b * b, b * c, b * d, c * c, c * d, d * d], 1)
    pu, pv = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3))
    pins = rng.random((3000, 2)) < 0.2
    for endpoint in (False, True):
        at, cost, which = torch_qem.placement(
            torch.as_tensor(q), torch.as_tensor(pu), torch.as_tensor(pv), endpoint,
            torch.as_tensor(pins[:, 0]), torch.as_tensor(pins[:, 1]),
        )  # fmt: skip
        for i in range(0, 3000, 7):
            x, y, z, c, w = quadrics.placement(q[i], pu[i], pv[i], endpoint, *pins[i])
            assert int(which[i]) == w
            np.testing.assert_allclose(at[i].numpy(), [x, y, z], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(float(cost[i]), c, rtol=1e-9, atol=1e-12)


def test_torch_clean_gives_the_same_mesh(blob_mesh):
    vertices, faces = blob_mesh
    # Extra: a far floater, repeated faces and a fin (a face doubled the other way round).
    floater = vertices * 0.01 + 2.0
    all_vertices = np.vstack([vertices, floater])
    all_faces = np.vstack([faces, faces[:5], faces[10:12, ::-1], faces[:20] + len(vertices)])
    colors = analytic_color(all_vertices)
    for wound in (all_faces, np.ascontiguousarray(all_faces[:, ::-1])):
        cpu = clean.clean_mesh(all_vertices, wound, {"c": colors})
        ours = torch_clean.clean_mesh(all_vertices, wound, {"c": colors})
        assert ours.report == cpu.report and cpu.report["floater_faces"] == 20
        np.testing.assert_array_equal(ours.vertices, cpu.vertices)
        np.testing.assert_array_equal(ours.faces, cpu.faces)
        np.testing.assert_array_equal(ours.attributes["c"], cpu.attributes["c"])


def test_torch_dilation_gives_the_same_bytes():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 256, (120, 90, 5), dtype=np.uint8)
    filled = rng.random((120, 90)) < 0.01
    expected, grown = dilate.dilate(values, filled, 6)
    ours, ours_grown = torch_dilate.dilate(values, filled, 6)
    assert 0 < grown.sum() < grown.size
    np.testing.assert_array_equal(ours_grown, grown)
    np.testing.assert_array_equal(ours, expected)


def test_torch_dilation_matches_over_the_bakes_rounds():
    # Chart-like blobs with gaps wider than the rounds: fronts meet, and far texels stay as given.
    rng = np.random.default_rng(1)
    size = 160
    rows, cols = np.mgrid[0:size, 0:size]
    filled = np.zeros((size, size), dtype=bool)
    for row, col, radius in rng.integers((0, 0, 3), (size, size, 25), (12, 3)):
        filled |= (rows - row) ** 2 + (cols - col) ** 2 < radius**2
    values = rng.integers(0, 256, (size, size, 7), dtype=np.uint8)
    expected, grown = dilate.dilate(values, filled, tolerances.DILATE_PX)
    ours, ours_grown = torch_dilate.dilate(values, filled, tolerances.DILATE_PX)
    assert filled.sum() < grown.sum() < grown.size
    np.testing.assert_array_equal(ours_grown, grown)
    np.testing.assert_array_equal(ours, expected)


def test_compiled_dilation_gives_the_same_bytes(monkeypatch):
    # The compiled round (CUDA's default) forced on the CPU: integer maths, so identical bytes.
    monkeypatch.setenv("DREAMCAD_COMPILE", "1")
    assert torch_dilate.round_function("cpu") is not torch_dilate._round
    rng = np.random.default_rng(2)
    values = rng.integers(0, 256, (96, 64, 4), dtype=np.uint8)
    filled = rng.random((96, 64)) < 0.02
    expected, grown = dilate.dilate(values, filled, 5)
    ours, ours_grown = torch_dilate.dilate(values, filled, 5)
    np.testing.assert_array_equal(ours_grown, grown)
    np.testing.assert_array_equal(ours, expected)
    monkeypatch.setenv("DREAMCAD_COMPILE", "0")
    assert torch_dilate.round_function("cuda") is torch_dilate._round


def test_path_choice(monkeypatch):
    monkeypatch.delenv(geometry_path.ENV_VAR, raising=False)
    assert geometry_path.chosen("cuda:1") == "torch"
    assert geometry_path.chosen("cpu") == "numba"
    assert geometry_path.chosen("cpu", "torch") == "torch"
    monkeypatch.setenv(geometry_path.ENV_VAR, "torch")
    assert geometry_path.chosen("cpu") == "torch"
    assert geometry_path.chosen("cpu", "numba") == "numba"  # the option wins over the env
    monkeypatch.setenv(geometry_path.ENV_VAR, "numba")
    assert geometry_path.chosen("cuda") == "numba"


def test_pipeline_on_the_torch_path_keeps_the_quality(sphere_mesh):
    vertices, faces = sphere_mesh
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    figures = {}
    for path in ("numba", "torch"):
        options = PipelineOptions(target_faces=1500, texture_size=256, geometry_path=path)
        result = run_pipeline(raw, options)
        figures[path] = result.quality
        assert result.quality["torch_stages"] == (path == "torch")
        assert decimate.within_tolerance(result.faces, 1500)
    ours, cpu = figures["torch"], figures["numba"]
    assert ours["watertight"] and ours["pieces"] == 1 and ours["flipped_faces"] == 0
    assert ours["mean_distance_pct"] <= 1.15 * cpu["mean_distance_pct"]
    assert abs(ours["texture_coverage"] - cpu["texture_coverage"]) < 0.05


@CUDA
def test_cuda_decimation_matches_the_cpu_decimator(blob_mesh, blob_clean, blob_cpu):
    result = decimate.decimate(blob_clean.vertices, blob_clean.faces, 3000, device="cuda")
    topology = quality.topology(result.vertices, result.faces)
    assert decimate.within_tolerance(len(result.faces), 3000)
    assert topology["watertight"] and topology["pieces"] == 1 and topology["euler"] == 2
    assert _turned_faces(blob_mesh, (result.vertices, result.faces)) == 0
    ours = quality.surface_distance(blob_mesh, (result.vertices, result.faces))
    cpu = quality.surface_distance(blob_mesh, (blob_cpu.vertices, blob_cpu.faces))
    assert ours["mean_distance_pct"] <= 1.1 * cpu["mean_distance_pct"]


@CUDA
def test_cuda_decimation_rounds_wait_three_times(blob_clean, monkeypatch):
    # CUDA's own count of the host waits (its sync debug mode warns at each): three a round
    # (four if this torch's unique waits twice), where the first version waited ~31 times.
    import warnings

    rounds = []
    one_round = torch_qem._round_collapses
    monkeypatch.setattr(torch_qem, "_round_collapses",
                        lambda *args: rounds.append(1) or one_round(*args))  # fmt: skip
    torch_qem.collapse(blob_clean.vertices, blob_clean.faces, 3000, device="cuda")  # warm
    rounds.clear()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch_qem.collapse(blob_clean.vertices, blob_clean.faces, 3000, device="cuda")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    waits = sum("synchroniz" in str(w.message) for w in caught)
    assert len(rounds) > 5 and waits <= 4 * len(rounds) + 16, (waits, len(rounds))


@CUDA
def test_cuda_pipeline_runs_the_torch_stages(sphere_mesh):
    vertices, faces = sphere_mesh
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    result = run_pipeline(raw, PipelineOptions(target_faces=1500, texture_size=512, device="cuda"))
    assert result.quality["torch_stages"] and result.quality["watertight"]
    assert result.quality["pieces"] == 1 and result.quality["flipped_faces"] == 0


@CUDA
def test_cuda_dilation_is_exact_and_never_waits_for_the_host():
    rng = np.random.default_rng(2)
    values = rng.integers(0, 256, (256, 256, 7), dtype=np.uint8)
    filled = rng.random((256, 256)) < 0.02
    expected, grown = dilate.dilate(values, filled, tolerances.DILATE_PX)
    values_t = torch.as_tensor(values, device="cuda")
    filled_t = torch.as_tensor(filled, device="cuda")
    torch_dilate.round_function("cuda")  # its one-time kernel check reads back; jobs do not
    torch.cuda.set_sync_debug_mode("error")
    try:
        ours, ours_grown = torch_dilate.dilate_tensor(values_t, filled_t, tolerances.DILATE_PX)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    np.testing.assert_array_equal(ours.cpu().numpy(), expected)
    np.testing.assert_array_equal(ours_grown.cpu().numpy(), grown)


def test_link_condition_holds_down_to_a_few_faces():
    from tests.support.analytic_meshes import marching_cubes_mesh, sphere_field

    cleaned = clean.clean_mesh(*marching_cubes_mesh(sphere_field, 20))
    result = decimate.decimate(cleaned.vertices, cleaned.faces, 8, device="cpu")
    topology = quality.topology(result.vertices, result.faces)
    assert topology["non_manifold_edges"] == 0 and topology["watertight"]
    assert topology["euler"] == 2 and topology["pieces"] == 1


def test_decimation_rounds_wait_for_the_host_three_times(blob_clean, monkeypatch):
    # The edge list's size, the ring sizes and the face compaction: every other step of a
    # round is masks on fixed-size tensors, so a GPU is not stalled ~30 times a round.
    from benchmarks.geometry_syncs import counting

    rounds = []
    one_round = torch_qem._round_collapses
    monkeypatch.setattr(torch_qem, "_round_collapses",
                        lambda *args: rounds.append(1) or one_round(*args))  # fmt: skip
    with counting() as counts:
        _, faces, _, _ = torch_qem.collapse(blob_clean.vertices, blob_clean.faces, 3000)
    assert decimate.within_tolerance(len(faces), 3000) and len(rounds) > 5
    # Once per job: the border edges (unique, nonzero), the quadric slices' bounds (a mesh
    # this size takes several CPU slices), the merge chains, the copies back.
    fixed = counts.syncs["all"] - 3 * len(rounds)
    assert 0 <= fixed <= 13, (len(rounds), counts.sync_names)


def test_compiled_decimation_gives_the_same_mesh(monkeypatch, caplog):
    # The compiled placement, face checks and independent-set passes (CUDA's default) forced
    # on the CPU: the same collapses as eager, and no recompiling for a second mesh size.
    from tests.support.analytic_meshes import marching_cubes_mesh, sphere_field

    monkeypatch.setenv("DREAMCAD_COMPILE", "0")
    assert torch_qem._kernel(torch_qem._choose, "cuda") is torch_qem._choose
    meshes = [clean.clean_mesh(*marching_cubes_mesh(sphere_field, r)) for r in (24, 30)]
    eager = [torch_qem.collapse(m.vertices, m.faces, 300) for m in meshes]
    monkeypatch.setenv("DREAMCAD_COMPILE", "1")
    assert torch_qem._kernel(torch_qem._choose, "cpu") is not torch_qem._choose
    for mesh, expected in zip(meshes, eager, strict=True):
        ours = torch_qem.collapse(mesh.vertices, mesh.faces, 300)
        for a, b in zip(ours, expected, strict=True):
            np.testing.assert_array_equal(a, b)
    assert "running it eagerly" not in caplog.text  # it compiled, no fallback
    # Compiled, no scatter-add falls back to aten.index_put_ (inductor has no int64 atomic
    # add; on CUDA each fallback sorted its indices): ~12 a round before. Only compiled code
    # calls the op through torch.ops (eager indexing does not show), and warm, not tracing.
    profile = cProfile.Profile()
    profile.runcall(torch_qem.collapse, meshes[1].vertices, meshes[1].faces, 300)
    fallbacks = [f for f in pstats.Stats(profile).stats if "aten.index_put" in f[2]]
    assert not fallbacks, fallbacks
    # The thresholds are constants of the kernels, not float inputs made tensors every call.
    made = [f for f in pstats.Stats(profile).stats if "_as_tensor_fullprec" in f[2]]
    assert not made, made


def test_dilate_texels_is_the_bakes_host_tail():
    # bake.py's steps on the host: place the baked texels, dilate, fill the unreached texels
    # with the rounded mean; dilate_texels does them on the device, to the same bytes.
    rng = np.random.default_rng(3)
    size, channels = 96, 7
    rows, cols = np.mgrid[0:size, 0:size]
    blob = (rows - 30) ** 2 + (cols - 40) ** 2 < 15**2
    flat = np.flatnonzero(blob | (rng.random((size, size)) < 0.002))
    texel_bytes = rng.integers(0, 256, (len(flat), channels), dtype=np.uint8)
    stacked = np.zeros((size, size, channels), dtype=np.uint8)
    stacked.reshape(-1, channels)[flat] = texel_bytes
    filled = np.zeros((size, size), dtype=bool)
    filled.reshape(-1)[flat] = True
    expected, grown = dilate.dilate(stacked, filled, tolerances.DILATE_PX)
    expected[~grown] = np.rint(texel_bytes.mean(axis=0)).astype(np.uint8)
    assert 0 < (~grown).sum() < grown.size  # some texels are never reached: the mean shows
    ours, ours_grown = torch_dilate.dilate_texels(texel_bytes, flat, size, tolerances.DILATE_PX)
    np.testing.assert_array_equal(ours_grown, grown)
    np.testing.assert_array_equal(ours, expected)


def test_slices_cover_every_row_and_are_fewer_and_larger_on_a_gpu():
    """A slice is a compiled call on a GPU: a 5M-face job's rows go in a few 1M-row slices
    there (no more than a 16th of the rows when that is larger), in 16 on the CPU."""
    for total in (0, 100, 70_000, 7_500_000, 20_000_000):
        for device in ("cpu", "cuda"):
            slices = torch_qem._slices(total, device)
            covered = [lo + i for lo, size in slices for i in (0, size - 1)]
            assert sum(size for _, size in slices) == total
            assert all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(slices))
            assert not slices or (covered[0] == 0 and covered[-1] == total - 1)
    assert len(torch_qem._slices(7_500_000, "cpu")) == torch_qem.SLICES
    on_gpu = torch_qem._slices(7_500_000, "cuda")
    assert len(on_gpu) == 8 and max(size for _, size in on_gpu) == torch_qem.MIN_DEVICE_SLICE
    assert len(torch_qem._slices(20_000_000, "cuda")) == torch_qem.SLICES


def _host_frame(vertices):
    """qem.collapse's unit frame as the host made it."""
    centre = vertices.mean(axis=0).astype(np.float64)
    scale = float(np.linalg.norm(vertices.max(axis=0) - vertices.min(axis=0))) or 1.0
    return (vertices.astype(np.float64) - centre) / scale, centre, scale


def test_decimation_frame_is_made_on_the_device(blob_mesh):
    """The unit frame (shift by the mean, divide by the bounds' diagonal) is made on the
    device from the vertices as given: float32 goes up, not a float64 host copy (twice the
    bytes, and three host passes), and the frame is the host-made one bit for bit."""
    from torch.overrides import TorchFunctionMode

    class Uploads(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.arrays = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") == "as_tensor" and isinstance(args[0], np.ndarray):
                self.arrays.append(args[0])
            return func(*args, **(kwargs or {}))

    vertices = blob_mesh[0].astype(np.float32)
    with Uploads() as uploads:
        torch_qem.collapse(vertices[:600], np.array([[0, 1, 2], [0, 2, 3]]), 1)
    assert [a.dtype for a in uploads.arrays if a.shape == (600, 3)] == [np.float32]
    rng = np.random.default_rng(8)
    for points in (vertices, vertices.astype(np.float64) * 7.3 + 0.1,
                   rng.normal(size=(999, 3)).astype(np.float32) * 1e3):  # fmt: skip
        pos, centre, scale = torch_qem.unit_frame(points, "cpu")
        expected, host_centre, host_scale = _host_frame(points)
        assert scale == host_scale and np.array_equal(centre, host_centre)
        np.testing.assert_array_equal(pos.numpy(), expected)


@CUDA
def test_cuda_decimation_frame_is_the_host_frame(blob_mesh):
    # CUDA divides by a host scalar through its reciprocal: the frame divides by a tensor.
    rng = np.random.default_rng(8)
    for points in (blob_mesh[0].astype(np.float32),
                   rng.normal(size=(99_999, 3)).astype(np.float32) * 1e3):  # fmt: skip
        pos, _, _ = torch_qem.unit_frame(points, "cuda")
        np.testing.assert_array_equal(pos.cpu().numpy(), _host_frame(points)[0])
