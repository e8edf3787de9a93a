"""Our TRELLIS.2 stages against upstream's on the tiny configuration, float32 on the CPU.

The reference, tests/data/trellis2_parity/upstream_tiny.npz, holds upstream's own outputs
(microsoft/TRELLIS.2, see README.md beside it) for fixed inputs stored in the same file, on the
weights ``testing.write_tiny_weights`` writes (their digest is stored: other weights are refused).
Every stage within 1e-4 relative; the decoders on the same voxels and subdivisions; the dual-grid
mesh the same vertices and triangles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from backend.models.sparse import SparseTensor
from backend.models.trellis2 import testing
from backend.models.trellis2.config import (
    SHAPE_DECODER,
    SHAPE_ENCODER_STEM,
    SHAPE_FLOW_512,
    SS_FLOW,
    TEX_DECODER,
    TEX_FLOW_512,
    read_pipeline_config,
)
from backend.models.trellis2.dual_grid import dual_grid_to_mesh
from backend.models.trellis2.loading import load_network
from backend.models.trellis2.sampler import FlowEulerGuidanceIntervalSampler
from backend.models.trellis2.sampler_settings import Trellis2SamplerSettings

DATA = Path(__file__).resolve().parents[4] / "tests/data/trellis2_parity/upstream_tiny.npz"
TOLERANCE = 1e-4


def rel(ours: Tensor, theirs: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs| (0 for two empty arrays)."""
    theirs_t = torch.from_numpy(np.asarray(theirs)).float()
    assert tuple(ours.shape) == tuple(theirs_t.shape), (tuple(ours.shape), theirs_t.shape)
    if not theirs_t.numel():
        return 0.0
    return float((ours.float() - theirs_t).abs().max() / theirs_t.abs().max().clamp_min(1e-12))


def coord_order(coords: Tensor | np.ndarray) -> Tensor:
    """Row order sorting (N, 4) coordinates lexicographically."""
    c = torch.as_tensor(np.asarray(coords)).long()
    key = ((c[:, 0] * 4096 + c[:, 1]) * 4096 + c[:, 2]) * 4096 + c[:, 3]
    return torch.argsort(key)


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, np.ndarray], dict]:
    with np.load(DATA) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads(str(arrays.pop("meta")))


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, reference) -> Path:
    folder = testing.write_tiny_weights(tmp_path_factory.mktemp("t2parity") / "model")
    testing.write_shape_encoder(folder)
    assert testing.weights_digest(folder) == reference[1]["weights"], (
        "the tiny weights differ from those the reference was made with: regenerate it"
    )
    return folder


@pytest.fixture(scope="module")
def ours(weights: Path, reference) -> dict[str, Tensor]:
    """Every stage of ours on the reference's inputs (chained as upstream's were)."""
    ref, meta = reference
    config = read_pipeline_config(weights)

    def net(role: str):
        return load_network(weights / config.models[role], "cpu", torch.float32)[0]

    def settings(stage: str) -> Trellis2SamplerSettings:
        raw = dict(meta["settings"][stage])
        raw["guidance_interval"] = tuple(raw["guidance_interval"])
        return Trellis2SamplerSettings(**raw)

    inp = {k[3:]: torch.from_numpy(v) for k, v in ref.items() if k.startswith("in.")}
    cond, neg, t, coords = inp["cond"], inp["neg_cond"], inp["t"], inp["coords"]
    sampler = FlowEulerGuidanceIntervalSampler(sigma_min=1e-5)
    out: dict[str, Tensor] = {}
    with torch.no_grad():
        ss = net(SS_FLOW)
        out["ss_rope_phases"] = torch.view_as_real(ss.derived_buffer("rope_phases"))
        out["ss_velocity"] = ss(inp["ss_noise"], t, cond)
        out["ss_sample"] = sampler.sample(ss, inp["ss_noise"], cond, neg, settings("ss"))

        def sparse(model, **kw) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
            return lambda f, tt, c: model(SparseTensor(f, coords), tt, c, **kw).feats

        shape = net(SHAPE_FLOW_512)
        out["shape_velocity"] = sparse(shape)(inp["shape_noise"], t, cond)
        out["shape_sample"] = sampler.sample(
            sparse(shape), inp["shape_noise"], cond, neg, settings("shape"), sparse=True
        )
        tex = net(TEX_FLOW_512)
        concat = SparseTensor(out["shape_sample"], coords)
        out["tex_velocity"] = sparse(tex, concat_cond=concat)(inp["tex_noise"], t, cond)
        out["tex_sample"] = sampler.sample(
            sparse(tex, concat_cond=concat), inp["tex_noise"], cond, neg, settings("tex"),
            sparse=True,
        )  # fmt: skip
        shape_slat = out["shape_sample"] * torch.tensor(config.shape_std) + torch.tensor(
            config.shape_mean
        )
        tex_slat = out["tex_sample"] * torch.tensor(config.tex_std) + torch.tensor(config.tex_mean)
        decoder = net(SHAPE_DECODER)
        slat = SparseTensor(shape_slat, coords)
        h, subs = decoder.run(slat)
        out["shape_dec_coords"], out["shape_dec_feats"] = h.coords, h.feats
        for i, sub in enumerate(subs):
            out[f"shape_dec_sub{i}_coords"] = decoder.run(slat, stop=i)[0].coords
            out[f"shape_dec_sub{i}"] = sub
        ht = net(TEX_DECODER).run(SparseTensor(tex_slat, coords), guide_subs=subs)[0]
        out["tex_dec_coords"], out["tex_dec_feats"] = ht.coords, ht.feats
        out["decoder"] = decoder  # type: ignore[assignment]
        encoder = load_network(weights / SHAPE_ENCODER_STEM, "cpu", torch.float32)[0]
        z = encoder.encode_grid(inp["enc_coords"], inp["enc_offsets"], inp["enc_flags"])[0]
        out["enc_coords"], out["enc_feats"] = z.coords, z.feats
    return out


def test_reference_inputs_and_weights_load(reference) -> None:
    """Upstream's loader took every tensor of our files (bar its derived RoPE buffer)."""
    _ref, meta = reference
    for role, report in meta["load"].items():
        assert report["unexpected"] == [] and report["shape"] == [], (role, report)
        assert set(report["missing"]) <= {"rope_phases"}, (role, report)


@pytest.mark.parametrize(
    "stage",
    ["ss_rope_phases", "ss_velocity", "ss_sample", "shape_velocity", "shape_sample",
     "tex_velocity", "tex_sample"],
)  # fmt: skip
def test_flow_stage_matches_upstream(stage: str, ours, reference) -> None:
    error = rel(ours[stage], reference[0][stage])
    print(f"{stage}: max rel {error:.2e}")  # the per-stage figure, shown with -s
    assert error <= TOLERANCE, f"{stage}: max rel {error:.2e}"


@pytest.mark.parametrize("name", ["shape_dec", "tex_dec", "enc"])
def test_decoder_matches_upstream_on_the_same_voxels(name: str, ours, reference) -> None:
    ref = reference[0]
    mine, theirs = coord_order(ours[f"{name}_coords"]), coord_order(ref[f"{name}_coords"])
    assert torch.equal(
        ours[f"{name}_coords"][mine].long(), torch.from_numpy(ref[f"{name}_coords"])[theirs].long()
    ), f"{name}: occupied voxels differ"
    error = rel(ours[f"{name}_feats"][mine], ref[f"{name}_feats"][theirs.numpy()])
    print(f"{name}: max rel {error:.2e} on {len(mine)} voxels")
    assert error <= TOLERANCE, f"{name}: max rel {error:.2e}"


def test_predicted_subdivisions_match_upstream(ours, reference) -> None:
    ref = reference[0]
    index = 0
    while f"shape_dec_sub{index}" in ref:
        mine = coord_order(ours[f"shape_dec_sub{index}_coords"])
        theirs = coord_order(ref[f"shape_dec_sub{index}_coords"]).numpy()
        expected = torch.from_numpy(ref[f"shape_dec_sub{index}"][theirs] > 0)
        assert torch.equal(ours[f"shape_dec_sub{index}"][mine], expected), f"subdivision {index}"
        index += 1
    assert index == len(ours["decoder"].blocks) - 1


def test_dual_grid_mesh_matches_upstreams_on_its_decoder_output(ours, reference) -> None:
    """Our mesh extraction on upstream's decoded features: same vertices, same triangles."""
    ref, _meta = reference
    decoder = ours["decoder"]
    decoded = SparseTensor(
        torch.from_numpy(ref["shape_dec_feats"]), torch.from_numpy(ref["shape_dec_coords"])
    )
    grid = decoder.dual_grid(decoded, decoder.resolution)
    mesh = dual_grid_to_mesh(
        grid.coords[:, 1:], grid.vertices, grid.intersected, grid.split_weight, grid.resolution
    )
    error = rel(mesh.vertices, ref["mesh_vertices"])
    print(f"mesh: vertices max rel {error:.2e}, {len(mesh.faces)} triangles")
    assert error <= TOLERANCE
    assert len(mesh.faces) == len(ref["mesh_faces"]) > 0

    def rows(faces: np.ndarray) -> list[tuple[int, ...]]:
        return sorted(map(tuple, faces.tolist()))

    assert rows(mesh.faces.numpy()) == rows(ref["mesh_faces"].astype(np.int64))
