"""The bake's device steps (atlas raster, closest-face search) against the compiled CPU ones.

The torch code runs on CPU torch here (the same code a CUDA job runs); the CUDA test at the
end runs only where a GPU is present.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial import cKDTree

from backend.geometry import decimate, raster, transfer, uv

torch = pytest.importorskip("torch")
from backend.geometry import torch_closest, torch_raster  # noqa: E402

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def atlas(sphere_mesh):
    vertices, faces = sphere_mesh
    reduced = decimate.decimate(vertices, faces, 2000)
    mapped = uv.unwrap(reduced.vertices, reduced.faces, 512)
    return reduced, mapped


def test_device_raster_gives_the_compiled_face_ids(atlas, monkeypatch):
    _, mapped = atlas
    for size in (512, 333):  # a size that does not divide the atlas evenly too
        expected = raster.rasterize_faces(mapped.uvs, mapped.faces, size, size)
        ours = torch_raster.rasterize_faces(mapped.uvs, mapped.faces, size, size, "cpu")
        assert ours.dtype == torch.int32 and 0.3 < (expected >= 0).mean() < 1.0
        np.testing.assert_array_equal(ours.numpy(), expected)
    # Chunked (a few faces per chunk) gives the same image.
    monkeypatch.setattr(torch_raster, "TEXELS_PER_CHUNK", 5000)
    ours = torch_raster.rasterize_faces(mapped.uvs, mapped.faces, 333, 333, "cpu")
    np.testing.assert_array_equal(ours.numpy(), expected)


def test_device_raster_first_face_wins_where_faces_overlap():
    points = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    faces = np.array([[3, 4, 5], [0, 1, 2], [0, 2, 1]])  # a big one first, then two overlaps
    expected = raster.rasterize_faces(points, faces, 40, 40)
    ours = torch_raster.rasterize_faces(points, faces, 40, 40, "cpu").numpy()
    np.testing.assert_array_equal(ours, expected)
    assert set(np.unique(ours)) == {-1, 0}


def test_device_closest_faces_are_the_compiled_search(sphere_mesh, atlas, monkeypatch):
    vertices, _ = sphere_mesh
    reduced, mapped = atlas
    nearest = cKDTree(mapped.vertices).query(vertices, k=3)[1]  # (k, 3): several rings
    split_copy = np.zeros(len(reduced.vertices), dtype=np.int64)
    split_copy[mapped.source_vertex] = np.arange(len(mapped.source_vertex))
    for near in (split_copy[reduced.owner], nearest):
        args = (vertices, near, mapped.vertices, mapped.faces, mapped.source_vertex)
        face, dist = transfer.closest_faces(*args)
        ours_face, ours_dist = torch_closest.closest_faces(*args, "cpu")
        np.testing.assert_array_equal(ours_face.numpy(), face)
        # float32 (what the splat reads) exactly; float64 within an ulp (CPU torch's sqrt).
        np.testing.assert_array_equal(ours_dist.numpy().astype(np.float32), dist.astype(np.float32))
        np.testing.assert_allclose(ours_dist.numpy(), dist, rtol=4e-16, atol=0)
    monkeypatch.setattr(torch_closest, "PAIRS_PER_CHUNK", 1000)  # many chunks: same answer
    ours_face, _ = torch_closest.closest_faces(*args, "cpu")
    np.testing.assert_array_equal(ours_face.numpy(), face)


@CUDA
def test_cuda_raster_and_closest_faces_match(sphere_mesh, atlas):
    vertices, _ = sphere_mesh
    _, mapped = atlas
    expected = raster.rasterize_faces(mapped.uvs, mapped.faces, 512, 512)
    ours = torch_raster.rasterize_faces(mapped.uvs, mapped.faces, 512, 512, "cuda")
    np.testing.assert_array_equal(ours.cpu().numpy(), expected)
    near = cKDTree(mapped.vertices).query(vertices, k=3)[1]
    args = (vertices, near, mapped.vertices, mapped.faces, mapped.source_vertex)
    face, dist = transfer.closest_faces(*args)
    ours_face, ours_dist = torch_closest.closest_faces(*args, "cuda")
    np.testing.assert_array_equal(ours_face.cpu().numpy(), face)
    ours_dist = ours_dist.cpu().numpy()
    np.testing.assert_array_equal(ours_dist.astype(np.float32), dist.astype(np.float32))
    np.testing.assert_allclose(ours_dist, dist, rtol=4e-16, atol=0)


def _splat_args(sphere_mesh, atlas, size):
    vertices, faces = sphere_mesh
    _, mapped = atlas
    near = cKDTree(mapped.vertices).query(vertices, k=3)[1]
    face, dist = transfer.closest_faces(vertices, near, mapped.vertices, mapped.faces,
                                        mapped.source_vertex)  # fmt: skip
    attributes = np.hstack([vertices, np.sin(7.0 * vertices)]).astype(np.float32)
    return (vertices, faces, attributes, face, dist, mapped.vertices, mapped.faces, mapped.uvs,
            mapped.chart, size)  # fmt: skip


def test_device_splat_is_the_compiled_splat(sphere_mesh, atlas, monkeypatch):
    from backend.geometry import transfer_torch

    for size in (512, 333):
        args = _splat_args(sphere_mesh, atlas, size)
        values, face = transfer.splat(*args)
        ours_values, ours_face = transfer_torch.splat(*args, device="cpu")
        assert 0.3 < (face >= 0).mean() < 1.0
        np.testing.assert_array_equal(ours_face, face)
        np.testing.assert_array_equal(ours_values, values)
    # Many chunks (a few copies each) draw the same image.
    monkeypatch.setattr(transfer_torch, "TEXELS_PER_CHUNK", 3000)
    ours_values, ours_face = transfer_torch.splat(*args, device="cpu")
    np.testing.assert_array_equal(ours_face, face)
    np.testing.assert_array_equal(ours_values, values)


def test_device_splat_waits_for_the_host_only_to_cut_chunks(sphere_mesh, atlas):
    # On a GPU every compaction or read-back stalls the queue: the splat reads the boxes'
    # total, the chunk edges and their running sums (small reads, to cut chunks), nothing else.
    from backend.geometry import transfer_torch
    from benchmarks.geometry_syncs import counting

    args = _splat_args(sphere_mesh, atlas, 512)
    with counting() as counts:
        _, face = transfer_torch.splat_tensors(*args, device="cpu")
    assert counts.syncs["all"] <= 3, counts.sync_names
    assert int((face >= 0).sum()) > 0


@CUDA
def test_cuda_splat_is_the_compiled_splat(sphere_mesh, atlas):
    from backend.geometry import transfer_torch

    args = _splat_args(sphere_mesh, atlas, 512)
    values, face = transfer.splat(*args)
    ours_values, ours_face = transfer_torch.splat(*args, device="cuda")
    np.testing.assert_array_equal(ours_face, face)
    np.testing.assert_allclose(ours_values, values, rtol=0, atol=1e-6)


def test_splat_chunks_partition_the_copies_near_the_chunk_size(monkeypatch):
    """Chunks cover every copy with texels once, in order; each holds its copies' texels and
    closes at the first copy that reaches the next multiple of TEXELS_PER_CHUNK."""
    import torch

    from backend.geometry import transfer_torch

    monkeypatch.setattr(transfer_torch, "TEXELS_PER_CHUNK", 1000)
    generator = torch.Generator().manual_seed(5)
    for n, high in ((0, 1), (1, 5), (3000, 4), (3000, 900), (50, 5000)):
        count = torch.randint(0, high, (n,), generator=generator)
        chunks = transfer_torch._chunks(count)
        ends = np.cumsum(count.numpy())
        total = int(ends[-1]) if n else 0
        assert sum(texels for _, _, texels in chunks) == total
        for first, last, texels in chunks:
            assert texels == int(count[first:last].sum()) > 0
        for (_, last, _), (first, _, _) in itertools.pairwise(chunks):
            assert int(count[last:first].sum()) == 0  # only empty copies between chunks
        for _, last, _ in chunks[:-1]:  # a chunk ends just past the copy crossing a multiple
            crossed = int(ends[last - 1]) // 1000 > (int(ends[last - 2]) // 1000 if last > 1 else 0)
            assert crossed or int(ends[last - 1]) % 1000 == 0
