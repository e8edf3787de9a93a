"""torch_inner_shells: every view's face-id image, seen faces and outside vertices are the numba
kernel's (CPU torch here, the code a CUDA job runs), and so is the hidden answer."""

from __future__ import annotations

import numpy as np
import pytest

from backend.geometry import clean, inner_shells, torch_inner_shells
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from tests.support import shell_meshes as shapes
from tests.support.analytic_meshes import analytic_color

torch = pytest.importorskip("torch")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

VIEWS = inner_shells.view_directions(48)[inner_shells.spread_order(48)]


def _cleaned(*meshes) -> clean.CleanResult:
    return clean.clean_mesh(*shapes.combine(*meshes), floater_fraction=0.0)


def _numba_views(vertices, faces, views, pixels, cull):
    """The numba kernel one view at a time (one thread): its face-id image (left in the
    thread's buffer), seen faces and outside vertices per view."""
    pos = np.asarray(vertices, dtype=np.float64)
    centre, radius = inner_shells.bounding_sphere(pos)
    unit = (pos - centre) / radius
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    facing = inner_shells._face_normals(unit, faces, cull)
    images, seen_all, outside_all = [], [], []
    for view in views:
        buffers = (
            np.empty((1, len(unit), 2)), np.empty((1, len(unit))),
            np.empty((1, pixels, pixels), np.int32), np.empty((1, pixels, pixels)),
        )  # fmt: skip
        seen = np.zeros(len(faces), dtype=bool)
        outside = np.zeros(len(unit), dtype=bool)
        inner_shells._draw_views(unit, faces, np.ascontiguousarray(view[None]), pixels, facing,
                                 1, seen, outside, *buffers)  # fmt: skip
        images.append(buffers[2][0].copy())
        seen_all.append(seen)
        outside_all.append(outside)
    return np.array(images), np.array(seen_all), np.array(outside_all)


def _assert_same_views(vertices, faces, views, pixels, cull, device="cpu"):
    want = _numba_views(vertices, faces, views, pixels, cull)
    got = torch_inner_shells.view_images(vertices, faces, views, pixels, cull, device)
    for name, expected, actual in zip(("images", "seen", "outside"), want, got, strict=True):
        np.testing.assert_array_equal(actual, expected, err_msg=name)
    assert (want[0] >= 0).any() and want[2].any()  # something drawn, something outside


SHELL_SCENES = {
    "sphere_in_sphere": (shapes.sphere(1.0, rows=24), shapes.sphere(0.5, rows=24)),
    "wall_built_into_a_box": (shapes.box(1.0), shapes.wall(1.0, 0.0)),
    "box_torus_bowl": (shapes.box(1.0), shapes.torus(0.6, 0.2), shapes.bowl(0.5)),
    "ball_in_an_open_bowl": (shapes.bowl(1.0), shapes.sphere(0.3, centre=(0.0, -0.69, 0.0))),
}


@pytest.mark.parametrize("scene", SHELL_SCENES)
def test_views_are_the_numba_kernels_on_the_shell_meshes(scene):
    cleaned = _cleaned(*SHELL_SCENES[scene])
    setup = inner_shells.patch_setup(cleaned.vertices, cleaned.faces)
    assert setup.count > 1
    _assert_same_views(cleaned.vertices, cleaned.faces, VIEWS[:12], 96, setup.cull)


@pytest.fixture(scope="module")
def noisy_pieces() -> clean.CleanResult:
    from benchmarks.big_noisy_mesh import make_input

    raw = make_input(32)
    # No floater removal: every little piece is its own patch (17 here, 11 of them hidden).
    return clean.clean_mesh(raw.vertices, raw.faces, floater_fraction=0.0)


def test_views_are_the_numba_kernels_on_a_noisy_many_piece_mesh(noisy_pieces):
    setup = inner_shells.patch_setup(noisy_pieces.vertices, noisy_pieces.faces)
    assert setup.count > 10 and setup.cull.any() and not setup.cull.all()
    _assert_same_views(noisy_pieces.vertices, noisy_pieces.faces, VIEWS, 64, setup.cull)


def test_views_drawn_in_many_small_chunks_are_the_same(noisy_pieces, monkeypatch):
    # Chunks of a few faces and candidates: a pixel's winner is carried across chunks.
    monkeypatch.setattr(torch_inner_shells, "PAIRS_PER_CHUNK", 3 * 2048)
    monkeypatch.setattr(torch_inner_shells, "CANDIDATES_PER_CHUNK", 4096)
    setup = inner_shells.patch_setup(noisy_pieces.vertices, noisy_pieces.faces)
    _assert_same_views(noisy_pieces.vertices, noisy_pieces.faces, VIEWS[:3], 64, setup.cull)


def test_exact_depth_ties_go_to_the_lowest_face_across_chunks(monkeypatch):
    # Face 0 far; faces 1 and 2 the same nearer triangle (bit-equal depths); face 3 nearer
    # still but small. One face per chunk: face 1 must displace 0, keep its tie against 2.
    vertices = np.array([
        [-1, -1, -0.5], [1, -1, -0.5], [0, 1, -0.5],
        [-1, -1, 0.0], [1, -1, 0.0], [0, 1, 0.0],
        [-0.1, -0.1, 0.5], [0.1, -0.1, 0.5], [0.0, 0.1, 0.5],
    ], dtype=np.float32)  # fmt: skip
    faces = np.array([[0, 1, 2], [3, 4, 5], [3, 4, 5], [6, 7, 8]])
    view = np.array([[0.0, 0.0, 1.0]])  # looking down -z: larger z is nearer
    monkeypatch.setattr(torch_inner_shells, "PAIRS_PER_CHUNK", 1)
    images, _, _ = torch_inner_shells.view_images(vertices, faces, view, 64)
    assert set(np.unique(images)) == {-1, 1, 3}
    _assert_same_views(vertices, faces, view, 64, np.zeros(4, dtype=bool))


@pytest.mark.parametrize("scene", [*SHELL_SCENES, "noisy"])
def test_patch_setup_is_the_cpu_ones(scene, noisy_pieces):
    cleaned = noisy_pieces if scene == "noisy" else _cleaned(*SHELL_SCENES[scene])
    vertices, faces = cleaned.vertices, cleaned.faces
    want = inner_shells.patch_setup(vertices, faces)
    got = torch_inner_shells.patch_setup(vertices, faces, torch.as_tensor(faces),
                                         cleaned.face_pairs)  # fmt: skip
    assert got.count == want.count > 1
    for name in ("patch", "cull", "lowest", "alone"):
        np.testing.assert_array_equal(getattr(got, name).numpy(), getattr(want, name), name)


def test_a_wrong_cull_is_caught():
    # The box wound inward but culled as if outward: its faces towards each view are skipped,
    # so the torus inside shows. The comparison must see the difference, and the answer flips.
    cleaned = _cleaned(shapes.box(1.0), shapes.torus(0.6, 0.2))
    setup = inner_shells.patch_setup(cleaned.vertices, cleaned.faces)
    inward = np.ascontiguousarray(cleaned.faces[:, ::-1])
    want = _numba_views(cleaned.vertices, cleaned.faces, VIEWS[:4], 64, setup.cull)
    got = torch_inner_shells.view_images(cleaned.vertices, inward, VIEWS[:4], 64, setup.cull)
    assert not np.array_equal(got[0], want[0])
    torus = setup.patch == setup.patch[-1]
    assert got[1][:, torus].any() and not want[1][:, torus].any()


@pytest.mark.parametrize(
    "meshes",
    [
        (shapes.box(1.0), shapes.torus(0.6, 0.2), shapes.bowl(0.5)),  # all views drawn
        (shapes.sphere(1.0), shapes.sphere(0.5, centre=(2.0, 0.0, 0.0))),  # stops early
        (shapes.sphere(1.0, rows=24), shapes.sphere(0.5, rows=24)),
        (shapes.sphere(1.0, rows=24),),  # one patch: nothing drawn
    ],
)
def test_hidden_faces_are_the_numba_paths(meshes):
    cleaned = _cleaned(*meshes)
    want = inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces, pixels=128)
    got = torch_inner_shells.find_inner_shells(cleaned.vertices, cleaned.faces, pixels=128)
    np.testing.assert_array_equal(got.hidden, want.hidden)
    assert (got.patches, got.hidden_patches) == (want.patches, want.hidden_patches)
    assert (got.views_drawn == 48) == (want.views_drawn == 48)
    assert (got.views_drawn == 0) == (want.views_drawn == 0) == (want.patches == 1)


def test_hidden_faces_on_a_noisy_many_piece_mesh(noisy_pieces):
    vertices, faces = noisy_pieces.vertices, noisy_pieces.faces
    want = inner_shells.find_inner_shells(vertices, faces, pixels=64)
    got = torch_inner_shells.find_inner_shells(vertices, faces, pixels=64, device="cpu")
    assert want.hidden_patches > 0 and want.hidden_patches < want.patches - 1
    np.testing.assert_array_equal(got.hidden, want.hidden)


def test_the_torch_pipeline_draws_its_views_in_torch(monkeypatch):
    calls = []
    real = torch_inner_shells.find_inner_shells

    def recorded(*args, **kwargs):
        calls.append(args[-1] if len(args) == 6 else kwargs.get("device"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch_inner_shells, "find_inner_shells", recorded)
    vertices, faces = shapes.combine(shapes.sphere(1.0, rows=24), shapes.sphere(0.6, rows=24))
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    options = PipelineOptions(target_faces=600, texture_size=256, measure_quality=False,
                              geometry_path="torch")  # fmt: skip
    result = run_pipeline(raw, options)
    assert calls == ["cpu"]
    assert result.quality["inner_shells_removed"] == 1
    assert result.quality["inner_faces_removed"] == len(faces) // 2


def test_a_vertex_exactly_on_a_pixel_centre_is_drawn():
    # Two unused corners make the bounding sphere exact (centre 0, radius 3), so these tiny
    # triangles' corners land exactly on pixel centres (40, 40) and (20, 20) of a 64 px view
    # down -z, the only centres in their bounds: the spans' slack must keep them.
    pixel = 3 / 32  # one pixel in model units here
    lower = np.array([51 / 64, 51 / 64, 0.0])  # (40, 40), the triangle above-right of it
    upper = np.array([-69 / 64, -69 / 64, 0.0])  # (20, 20), the triangle below-left of it
    one, two = np.array([0.3, 0.1, 0.0]) * pixel, np.array([0.1, 0.3, 0.0]) * pixel
    vertices = np.array([[-2, -2, -1], [2, 2, 1], lower, lower + one, lower + two, upper,
                         upper - one, upper - two])  # fmt: skip
    faces = np.array([[2, 3, 4], [5, 7, 6]])
    view = np.array([[0.0, 0.0, 1.0]])
    images, _, _ = torch_inner_shells.view_images(vertices, faces, view, 64)
    assert images[0, 40, 40] == 0 and images[0, 20, 20] == 1
    assert (images >= 0).sum() == 2
    _assert_same_views(vertices, faces, view, 64, np.zeros(2, dtype=bool))


@CUDA
def test_cuda_views_setup_and_answer_are_the_numba_kernels(noisy_pieces):
    # The device's float64 arithmetic must round as the CPU's: every image of every view.
    vertices, faces = noisy_pieces.vertices, noisy_pieces.faces
    want = inner_shells.patch_setup(vertices, faces)
    got = torch_inner_shells.patch_setup(vertices, faces, torch.as_tensor(faces, device="cuda"),
                                         noisy_pieces.face_pairs)  # fmt: skip
    for name in ("patch", "cull", "lowest", "alone"):
        np.testing.assert_array_equal(getattr(got, name).cpu().numpy(), getattr(want, name))
    _assert_same_views(vertices, faces, VIEWS, 512, want.cull, "cuda")
    found = torch_inner_shells.find_inner_shells(vertices, faces, device="cuda")
    np.testing.assert_array_equal(found.hidden,
                                  inner_shells.find_inner_shells(vertices, faces).hidden)
