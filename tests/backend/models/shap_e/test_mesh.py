"""Surface extraction from a tiny random Shap-E latent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cancellation import Cancelled, CancelToken
from backend.models.shap_e.config import TEXT_PIPELINE
from backend.models.shap_e.loading import load_shap_e
from backend.models.shap_e.mesh import TO_BACKEND, is_volume_filling, latent_to_mesh, lattice_points
from tests.backend.models.shap_e.test_marching_tables import _lattice, _polygonise


@pytest.fixture(scope="module")
def renderer_and_latent(shap_e_text_dir: Path):
    pipeline, config, _ = load_shap_e(shap_e_text_dir, "shap-e", TEXT_PIPELINE, "cpu", "float32")
    # A latent whose implicit surface crosses the box: search a few seeds for one that does.
    for seed in range(20):
        latent = torch.randn(config.latent_tokens, config.latent_dim,
                             generator=torch.Generator().manual_seed(seed))
        mesh = latent_to_mesh(pipeline.shap_e_renderer, latent, 12, lambda *a, **k: None,
                              CancelToken())
        if len(mesh.faces) > 20:
            return pipeline.shap_e_renderer, latent
    pytest.fail("no random latent gave a surface")


def test_rotation_is_proper_and_maps_up_and_front() -> None:
    assert np.linalg.det(TO_BACKEND) == pytest.approx(1.0)
    np.testing.assert_allclose(np.array([0, 0, 1.0]) @ TO_BACKEND, [0, 1, 0])  # up -> +Y
    np.testing.assert_allclose(np.array([0, -1.0, 0]) @ TO_BACKEND, [0, 0, 1])  # front -> +Z


def test_lattice_order_matches_the_field_layout() -> None:
    points = lattice_points(3, torch.device("cpu"), torch.float32).reshape(3, 3, 3, 3)
    assert points[2, 0, 0].tolist() == [1, -1, -1]
    assert points[0, 0, 2].tolist() == [-1, -1, 1]


def test_mesh_is_closed_outward_coloured_and_in_the_box(renderer_and_latent) -> None:
    import trimesh

    renderer, latent = renderer_and_latent
    steps: list[tuple[str, int, int]] = []
    mesh = latent_to_mesh(renderer, latent, 24, lambda s, i, n, *a, **k: steps.append((s, i, n)),
                          CancelToken())
    surface = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
    assert surface.is_watertight and surface.volume > 0
    step = 2.0 / 23
    assert np.abs(mesh.vertices).max() <= 1.0 + step + 1e-5
    assert mesh.vertex_colors.shape == (len(mesh.vertices), 3)
    assert mesh.vertex_colors.min() >= 0.0 and mesh.vertex_colors.max() <= 1.0
    # The field is the same function the vertex colours came from, in the backend frame.
    np.testing.assert_allclose(mesh.color_field(mesh.vertices), mesh.vertex_colors, atol=1e-5)
    assert steps[-1][1] == steps[-1][2] and all(s == "mesh" for s, _, _ in steps)


def test_finer_grid_gives_more_faces(renderer_and_latent) -> None:
    renderer, latent = renderer_and_latent
    coarse = latent_to_mesh(renderer, latent, 16, lambda *a, **k: None, CancelToken())
    fine = latent_to_mesh(renderer, latent, 32, lambda *a, **k: None, CancelToken())
    assert len(fine.faces) > 2 * len(coarse.faces)


def test_cancel_stops_extraction(renderer_and_latent) -> None:
    renderer, latent = renderer_and_latent
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        latent_to_mesh(renderer, latent, 16, lambda *a, **k: None, token)


def test_volume_filling_noise_is_told_apart_from_surfaces() -> None:
    size = 40
    xs, ys, zs = _lattice(size)
    sphere = _polygonise(0.9 - np.sqrt(xs**2 + ys**2 + zs**2))
    assert not is_volume_filling(len(sphere.faces), size)
    noise = np.random.default_rng(0).standard_normal((size, size, size))
    assert is_volume_filling(len(_polygonise(noise).faces), size)
