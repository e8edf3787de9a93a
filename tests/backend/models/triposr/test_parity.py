"""Parity with upstream TripoSR: same tiny config, same random weights, same inputs.

tests/data/triposr/parity_tiny.npz holds numbers only, produced by running the upstream code
(VAST-AI-Research/TripoSR, transformers 4.35, torch 2.13 CPU; torchmcubes replaced by
scikit-image's marching cubes) outside this repo: the weights (``weight/<key>``), an input
image and query points, and upstream's image tokens, triplanes, densities, colours, a density
grid and statistics of the extracted mesh. The weights go through our own writer and loader
(official ``model.ckpt`` layout, strict) before anything is compared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.models.triposr.config import TripoSRConfig
from backend.models.triposr.isosurface import grid_points, marching_cubes
from backend.models.triposr.loading import load_model, write_model_folder
from backend.models.triposr.network import TripoSRNet
from backend.models.triposr.pipeline import prepare_condition

REFERENCE = Path(__file__).parents[3] / "data" / "triposr" / "parity_tiny.npz"
RTOL = 1e-4


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def model(reference: dict, tmp_path_factory: pytest.TempPathFactory) -> TripoSRNet:
    raw = json.loads(str(reference["config_json"]))
    folder = tmp_path_factory.mktemp("parity")
    vit_dir = folder / raw["image_tokenizer"]["pretrained_model_name_or_path"]
    vit_dir.mkdir()
    (vit_dir / "config.json").write_text(str(reference["vit_config_json"]))
    config = TripoSRConfig.from_dict(raw, base_dir=folder)
    state = {
        key.removeprefix("weight/"): torch.from_numpy(value)
        for key, value in reference.items()
        if key.startswith("weight/")
    }
    write_model_folder(folder, config, state)
    return load_model(folder)


def assert_close(ours: np.ndarray | torch.Tensor, theirs: np.ndarray, rtol: float = RTOL) -> None:
    """Relative to the reference's magnitude (elementwise, floored at 1% of its max)."""
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == theirs.shape
    scale = np.maximum(np.abs(theirs), 0.01 * np.abs(theirs).max())
    worst = float(np.max(np.abs(ours - theirs) / scale))
    assert worst <= rtol, f"max relative error {worst:.3g} > {rtol}"


@torch.no_grad()
def test_image_tokens_and_triplanes(model: TripoSRNet, reference: dict) -> None:
    condition = prepare_condition(reference["image"], model.config.cond_image_size)
    assert_close(model.image_tokenizer(condition), reference["image_tokens"])
    assert_close(model(condition), reference["scene_codes"])


@torch.no_grad()
def test_density_and_colour_at_query_points(model: TripoSRNet, reference: dict) -> None:
    planes = torch.from_numpy(reference["scene_codes"][0])
    field = model.query(planes, torch.from_numpy(reference["points"]), chunk_size=128)
    assert_close(field["density"], reference["density"])
    assert_close(field["density_act"], reference["density_act"])
    assert_close(field["color"], reference["color"])


@torch.no_grad()
def test_density_grid_and_mesh_statistics(model: TripoSRNet, reference: dict) -> None:
    resolution = int(reference["grid_resolution"])
    planes = torch.from_numpy(reference["scene_codes"][0])
    points = grid_points(resolution, model.config.radius)
    density = model.query(planes, points, chunk_size=4096, want_color=False)["density_act"]
    grid = density.reshape(resolution, resolution, resolution).numpy()
    assert_close(grid, reference["grid_density"])

    vertices, faces = marching_cubes(grid, float(reference["mc_threshold"]), model.config.radius)
    assert len(vertices) == int(reference["mesh_n_vertices"])
    assert len(faces) == int(reference["mesh_n_faces"])
    triangles = vertices.astype(np.float64)[faces]
    edges = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    area = np.linalg.norm(edges, axis=1).sum() / 2
    volume = np.einsum("ij,ij->i", triangles[:, 0], np.cross(triangles[:, 1], triangles[:, 2]))
    assert_close(np.array(area), reference["mesh_area"])
    assert_close(np.array(abs(volume.sum() / 6)), reference["mesh_volume"])
    assert volume.sum() > 0, "faces must wind outward (positive signed volume)"
    assert_close(np.stack([vertices.min(0), vertices.max(0)]), reference["mesh_bbox"])
    assert_close(vertices.mean(0), reference["mesh_centroid"], rtol=1e-3)

    colors = model.query(planes, torch.from_numpy(vertices), chunk_size=4096)["color"].numpy()
    # Upstream's vertex colours went through trimesh's uint8 quantisation.
    assert np.abs(colors.mean(0) - reference["mesh_color_mean"]).max() < 1.0 / 255


def test_gpu_marching_cubes_path_agrees_on_the_reference_grid(reference: dict) -> None:
    """Our torch marching cubes (the CUDA path) on upstream's own density grid."""
    vertices, faces = marching_cubes(
        reference["grid_density"], float(reference["mc_threshold"]), 0.87, method="torch"
    )
    triangles = vertices.astype(np.float64)[faces]
    edges = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    area = np.linalg.norm(edges, axis=1).sum() / 2
    # Ambiguous cells are split by a different (fixed) rule than scikit-image's: close, not equal.
    assert abs(area / float(reference["mesh_area"]) - 1) < 5e-3
    assert abs(len(faces) / int(reference["mesh_n_faces"]) - 1) < 5e-3
    np.testing.assert_allclose(
        np.stack([vertices.min(0), vertices.max(0)]), reference["mesh_bbox"], atol=1e-5
    )
