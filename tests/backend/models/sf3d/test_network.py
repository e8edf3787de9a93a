"""network.py: full-size key manifest of the official checkpoint, and tiny forward shapes."""

from __future__ import annotations

import json

import torch

from backend.models.sf3d.config import SF3DConfig, config_from_dict
from backend.models.sf3d.network import SF3DNetwork, default_camera
from backend.models.sf3d.testing import randomize_weights, tiny_config_dict
from tests.backend.models.sf3d.conftest import DATA


def test_full_size_state_dict_matches_the_official_key_manifest() -> None:
    manifest = json.loads((DATA / "key_manifest.json").read_text())["tensors"]
    with torch.device("meta"):  # ~1 B parameters, no memory
        model = SF3DNetwork(SF3DConfig())
    ours = {name: list(t.shape) for name, t in model.state_dict().items()}
    assert sorted(set(manifest) - set(ours)) == []
    assert sorted(set(ours) - set(manifest)) == []
    assert {k: v for k, v in ours.items() if manifest[k] != v} == {}


def test_tiny_forward_shapes_and_ranges() -> None:
    config = config_from_dict(tiny_config_dict())
    model = SF3DNetwork(config).eval()
    randomize_weights(model, seed=1)
    torch.manual_seed(0)
    c2w, intrinsic = default_camera(config)
    rgb = torch.rand(2, 1, 56, 56, 3)
    with torch.no_grad():
        planes, raw = model.scene_codes(rgb, c2w.expand(2, 1, 4, 4),
                                        intrinsic.expand(2, 1, 3, 3))
        assert planes.shape == (2, 3, 8, 16, 16) and raw.shape == (2, 3, 32, 8, 8)
        decoded = model.decode(torch.rand(5, 3) - 0.5, planes[0])
        materials = model.estimate_materials(rgb, torch.ones(2, 1, 56, 56, 1))
    assert decoded["density"].shape == (5, 1) and bool((decoded["density"] >= 0).all())
    assert bool(((decoded["features"] >= 0) & (decoded["features"] <= 1)).all())
    norms = decoded["perturb_normal"].norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert materials["roughness"].shape == (2, 1, 1)
    assert bool(((materials["metallic"] >= 0) & (materials["metallic"] <= 1)).all())


def test_default_camera_looks_from_plus_x_with_z_up() -> None:
    c2w, intrinsic = default_camera(SF3DConfig())
    assert torch.allclose(c2w[:3, 3], torch.tensor([1.6, 0.0, 0.0]))
    assert c2w[:3, 1].tolist() == [0.0, 0.0, 1.0]  # camera up = +Z
    assert abs(float(intrinsic[0, 0]) - 1.3737387) < 1e-5 and float(intrinsic[0, 2]) == 0.5


def test_resized_position_embeddings_follow_the_weights() -> None:
    """The cached bicubic resize is reused, but never outlives a change of the weights."""
    from backend.models.sf3d.config import DinoConfig
    from backend.models.sf3d.dinov2 import Embeddings

    embeddings = Embeddings(DinoConfig(hidden_size=8, image_size=70, patch_size=14))
    torch.nn.init.normal_(embeddings.position_embeddings)
    with torch.no_grad():
        first = embeddings.interpolated_positions(16, 56, 56)  # 4x4 patches from a 5x5 grid
        assert first.shape == (1, 17, 8)
        assert embeddings.interpolated_positions(16, 56, 56) is first  # reused
        embeddings.load_state_dict({**embeddings.state_dict(),
                                    "position_embeddings": torch.randn(1, 26, 8)})  # fmt: skip
        second = embeddings.interpolated_positions(16, 56, 56)
        assert not torch.equal(first, second)
        assert torch.equal(second, embeddings._resize_positions(56, 56))
        assert embeddings.interpolated_positions(36, 84, 84).shape == (1, 37, 8)
