"""Parity with hy3dgen 2.0.2 on identical tiny random weights (within 1e-4 relative).

The reference numbers were produced outside the repo by running hy3dgen 2.0.2 (CPU, float32)
on the weights and inputs stored in the same files; see tests/data/hunyuan/README.md.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from backend.models.hunyuan3d.loading import load_shape_models, load_vae
from backend.models.hunyuan3d.pipeline import ShapePipeline, ShapeSettings
from backend.models.hunyuan3d.volume import (
    Box,
    decode_hierarchical,
    extract_surface,
    flashvdm_resolutions,
)
from tests.backend.models.hunyuan3d.conftest import (
    load_reference,
    reference_mask,
    write_reference_vae,
    write_reference_variant,
)

RELATIVE = 1e-4


def assert_close(ours: torch.Tensor | np.ndarray, reference: np.ndarray) -> None:
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == reference.shape
    scale = max(float(np.abs(reference).max()), 1e-12)
    error = float(np.abs(ours - reference).max())
    assert error <= RELATIVE * scale, f"max error {error:.3g} vs scale {scale:.3g}"


def _setup(kind: str, tmp_path: Path):
    reference = load_reference(kind)
    folder = write_reference_variant(reference, tmp_path / kind)
    models = load_shape_models(folder, "cpu", torch.float32)
    return reference, ShapePipeline(models)


def test_conditioner_and_dit_match(kind: str, tmp_path: Path) -> None:
    reference, pipeline = _setup(kind, tmp_path)
    views = tuple(int(v) for v in reference["views"])
    with torch.no_grad():
        cond = pipeline.models.conditioner.main_image_encoder(
            torch.from_numpy(reference["image"]), views
        )
        assert_close(cond, reference["cond"])
        guidance = torch.tensor([4.0]) if kind == "turbo" else None
        velocity = pipeline.models.dit(
            torch.from_numpy(reference["dit_x"]),
            torch.from_numpy(reference["dit_t"]),
            cond,
            guidance=guidance,
        )
    assert_close(velocity, reference["dit_velocity"])


def test_sampling_matches(kind: str, tmp_path: Path) -> None:
    reference, pipeline = _setup(kind, tmp_path)
    views = tuple(int(v) for v in reference["views"])
    settings = ShapeSettings(
        steps=int(reference["steps"]),
        guidance_scale=float(reference["guidance_scale"]),
        seed=int(reference["seed"]),
    )
    with torch.no_grad():
        guided = not pipeline.models.config.dit.guidance_embed
        cond = pipeline.condition(torch.from_numpy(reference["image"]), views, guided)
        latents = pipeline.sample(cond, settings)
        assert_close(latents, reference["latents"])
        decoded = pipeline.models.vae.decode_latents(latents)
    assert_close(decoded, reference["decoded"])


def test_dense_decoding_and_mesh_match(tmp_path: Path) -> None:
    reference, pipeline = _setup("plain", tmp_path)
    settings = ShapeSettings(octree_resolution=24, num_chunks=3000, bounds=1.01)
    with torch.no_grad():
        logits, box = pipeline.decode(torch.from_numpy(reference["latents"]), settings)
    assert_close(logits, reference["dense_logits"])
    vertices, faces = extract_surface(torch.from_numpy(reference["dense_logits"]), box)
    assert_close(vertices, reference["mesh_vertices"])
    np.testing.assert_array_equal(faces, reference["mesh_faces"])


def test_flashvdm_octree_decoding_matches_where_upstream_queried(tmp_path: Path) -> None:
    reference, pipeline = _setup("plain", tmp_path)
    vae = pipeline.models.vae
    queried: list[int] = []

    def query(points: torch.Tensor) -> torch.Tensor:
        queried.append(points.shape[1])
        return vae.geo_decoder(points, keys, values)

    with torch.no_grad():
        latents = torch.from_numpy(reference["latents"])
        keys, values = vae.prepare_queries(vae.decode_latents(latents))
        logits, box = decode_hierarchical(
            query,
            Box(1.01, 32),
            3000,
            "cpu",
            torch.float32,
            levels=flashvdm_resolutions(32, min_resolution=16),
        )
    shape = tuple(int(s) for s in reference["hier_shape"])
    mask = np.unpackbits(reference["hier_mask"])[: np.prod(shape)].reshape(shape).astype(bool)
    assert box.resolution == 30  # FlashVDM snaps 32 to levels 15 -> 30
    assert_close(logits.numpy()[mask], reference["hier_values"])
    # We query exactly the points upstream queries: the coarse 16^3 grid, then the fine ones.
    assert sum(queried) - 16**3 == int(mask.sum())


def _flashvdm_settings(reference: dict[str, np.ndarray], name: str, **extra) -> ShapeSettings:
    return ShapeSettings(
        octree_resolution=int(reference[f"{name}_resolution"]),
        min_resolution=int(reference[f"{name}_min_resolution"]),
        num_chunks=3000,
        decoding="flashvdm",
        **extra,
    )


def test_flashvdm_adaptive_key_selection_matches(tmp_path: Path) -> None:
    """decoding="flashvdm" selects keys as upstream's enable_flashvdm() does by default."""
    reference, pipeline = _setup("plain", tmp_path)
    flash = load_reference("flashvdm")
    mask = reference_mask(flash, "adaptive")
    latents = torch.from_numpy(reference["latents"])
    with torch.no_grad():
        settings = _flashvdm_settings(flash, "adaptive")
        logits, box = pipeline.decode(latents, settings)
        exact, _ = pipeline.decode(latents, replace(settings, adaptive_kv=False))
    assert box.resolution == 46 and logits.shape == mask.shape  # 48 -> levels 23, 46
    assert_close(logits.numpy()[mask], flash["adaptive_values"])
    # The selection is an approximation: exact attention is measurably off the reference.
    scale = np.abs(flash["adaptive_values"]).max()
    assert np.abs(exact.numpy()[mask] - flash["adaptive_values"]).max() > 100 * RELATIVE * scale


def test_turbo_vae_decodes_like_upstream(tmp_path: Path) -> None:
    """A turbo VAE in ShapeModels decodes flashvdm (random weights unlike the variant's)."""
    reference, pipeline = _setup("plain", tmp_path)
    flash = load_reference("flashvdm")
    models = pipeline.models
    folder = write_reference_vae(flash, tmp_path / "vae-turbo")
    models.turbo_vae = load_vae(folder, models.device, models.dtype, models.config)
    latents = torch.from_numpy(reference["latents"])
    settings = _flashvdm_settings(flash, "turbo")
    with torch.no_grad():
        assert_close(models.turbo_vae.decode_latents(latents), flash["turbo_decoded"])
        logits, _ = pipeline.decode(latents, settings)
        own, _ = pipeline.decode(latents, replace(settings, decoding="hierarchical"))
    mask = reference_mask(flash, "turbo")
    assert_close(logits.numpy()[mask], flash["turbo_values"])
    # Other decodings keep the variant's own VAE.
    assert own.shape != logits.shape or not np.allclose(own.numpy(), logits.numpy())
