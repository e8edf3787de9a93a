"""The pieces the ours-vs-upstream benchmarks share and the fixes that make those comparisons
like-for-like: repeat summaries, mesh agreement, provenance, SF3D's random state (a real
bbox), hy3dgen's hierarchical spacing cast, MVDream's SDPA attention and interleaved timing.
Upstream packages are not installed here; what is tested is our side of each comparison."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import hunyuan3d, text_to_3d
from benchmarks.common import mesh_agreement, spread, upstream_provenance


def test_spread_is_median_min_max_and_count() -> None:
    assert spread([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert spread([4.0, 1.0, 2.0, 3.0])["median"] == 2.5


def _octahedron() -> tuple[np.ndarray, np.ndarray]:
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                        dtype=np.float64)  # fmt: skip
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                      [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])  # fmt: skip
    return vertices, faces


def test_mesh_agreement_same_mesh_and_flipped_winding() -> None:
    vertices, faces = _octahedron()
    same = mesh_agreement((vertices, faces), (vertices.copy(), np.roll(faces, 1, axis=1)))
    assert same["chamfer_over_diagonal"] == 0.0
    assert same["max_vertex_diff_over_diagonal"] == 0.0
    assert same["same_triangles_share"] == 1.0 and same["same_winding_share"] == 1.0
    flipped = mesh_agreement((vertices, faces), (vertices, faces[:, ::-1]))
    assert flipped["same_triangles_share"] == 1.0 and flipped["same_winding_share"] == 0.0


def test_mesh_agreement_of_one_big_mesh_with_itself_is_zero() -> None:
    """Over 50k vertices each side is sampled: a sample is asked against the other side whole,
    so the same mesh is 0 apart (two independent samples were ~1 % of the diagonal apart)."""
    vertices = np.random.default_rng(1).random((120_000, 3))
    faces = np.arange(120_000).reshape(-1, 3)
    same = mesh_agreement((vertices, faces), (vertices.copy(), faces.copy()))
    assert same["chamfer_over_diagonal"] == 0.0


def test_mesh_agreement_counts_non_finite_vertices_and_measures_the_rest() -> None:
    vertices, faces = _octahedron()
    theirs = np.vstack([vertices * 1.1, [[np.nan, 0.0, 0.0]]])
    result = mesh_agreement((vertices, faces), (theirs, faces))
    assert result["vertices"] == [6, 7] and result["non_finite_vertices"] == [0, 1]
    assert result["chamfer_over_diagonal"] == pytest.approx(0.1 / (2.2 * math.sqrt(3)))
    assert "same_triangles_share" not in result  # vertex counts differ: no face-by-face figure
    empty = mesh_agreement((vertices, faces), (np.zeros((0, 3)), np.zeros((0, 3), int)))
    assert empty["chamfer_over_diagonal"] is None


def test_upstream_provenance_reads_the_commit_and_lists_loaded_shims(tmp_path: Path) -> None:
    (tmp_path / "UPSTREAM_COMMIT").write_text("abc123\n")
    shim = types.ModuleType("dreamcad_test_shim")
    shim.__dreamcad_shim__ = True  # type: ignore[attr-defined]
    sys.modules["dreamcad_test_shim"] = shim
    try:
        result = upstream_provenance(tmp_path)
    finally:
        del sys.modules["dreamcad_test_shim"]
    assert result["commit"] == "abc123"
    assert "dreamcad_test_shim" in result["shims"] and "numpy" not in result["shims"]
    assert upstream_provenance(None)["commit"] is None


def test_sf3d_random_state_holds_the_real_bbox() -> None:
    from backend.models.sf3d.config import config_from_dict
    from backend.models.sf3d.testing import tiny_config_dict
    from benchmarks.sf3d import build_model

    config = config_from_dict(tiny_config_dict())
    model, state = build_model(config, torch.device("cpu"))
    r = config.radius
    expected = torch.tensor([[-r, -r, -r], [r, r, r]])
    assert torch.equal(state["bbox"], expected) and torch.equal(model.bbox, expected)


def test_float_index_torch_keeps_the_fine_spacing() -> None:
    """hy3dgen's line ``stack(indices) * tensor(spacing, dtype=<stacked dtype>) + corner``:
    with torch the spacing truncates to 0 (every point at the corner); with the patch the
    points are index * spacing + corner."""
    mask = torch.zeros(5, 5, 5, dtype=torch.bool)
    mask[1, 2, 3] = mask[4, 0, 2] = True
    spacing, corner = 2.02 / 4, np.array([-1.01] * 3)

    def upstream_line(module) -> torch.Tensor:
        points = module.stack(module.where(mask), dim=1)
        return points * module.tensor(spacing, dtype=points.dtype) + module.tensor(
            corner, dtype=points.dtype)

    as_shipped = upstream_line(torch)
    assert (as_shipped == -1).all()  # the bug the patch works around
    fixed = upstream_line(hunyuan3d.FloatIndexTorch())
    expected = torch.tensor([[1, 2, 3], [4, 0, 2]], dtype=torch.float32) * spacing - 1.01
    assert fixed.dtype == torch.float32 and torch.allclose(fixed, expected)
    floats = [torch.ones(2), torch.zeros(2)]
    assert torch.equal(hunyuan3d.FloatIndexTorch.stack(floats), torch.stack(floats))


@pytest.mark.parametrize("layout", ["bhnd_flat", "bnhd"])
def test_sdpa_attention_matches_softmax_attention(layout: str) -> None:
    generator = torch.Generator().manual_seed(0)
    shape = (6, 10, 8) if layout == "bhnd_flat" else (2, 10, 3, 8)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    out = text_to_3d.sdpa_memory_efficient_attention(q, k, v)
    if layout == "bnhd":  # xformers' (b, n, h, d): attention runs over n per head
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    expected = weights @ v
    if layout == "bnhd":
        expected = expected.transpose(1, 2)
    assert torch.allclose(out, expected, atol=1e-5)


def test_interleaved_repeats_warm_up_alternate_and_summarise() -> None:
    calls: list[tuple[str, int]] = []

    def side(name: str):
        def sample(steps: int) -> torch.Tensor:
            calls.append((name, steps))
            return torch.full((2,), float(len(calls)))

        return sample

    timed, latents = text_to_3d.interleaved_repeats(
        {"ours": side("ours"), "upstream": side("upstream")}, steps=7, repeats=3,
        device=torch.device("cpu"))  # fmt: skip
    assert calls[:2] == [("ours", 2), ("upstream", 2)]  # one short warm-up each
    timed_order = [name for name, steps in calls[2:]]
    assert timed_order == ["ours", "upstream", "upstream", "ours", "ours", "upstream"]
    assert all(steps == 7 for _, steps in calls[2:])
    for name in ("ours", "upstream"):
        row = timed[name]
        assert row["repeats"] == 3 and row["warmed_up"] is True
        assert row["min"] <= row["seconds"] <= row["max"]
    assert latents["upstream"][0] == 8.0  # the last run's latents are kept
