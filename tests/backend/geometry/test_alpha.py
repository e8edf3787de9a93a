"""An alpha field: the bake adds a base-colour alpha channel, the GLB blends and validates."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.geometry.raw_asset import RawAsset
from tests.support.gltf_validator import error_messages, validate


def _material(payload: bytes) -> dict:
    length = struct.unpack_from("<I", payload, 12)[0]
    return json.loads(payload[20 : 20 + length])["materials"][0]


def _raw(sphere_mesh, alpha: bool) -> RawAsset:
    vertices, faces = sphere_mesh

    def half_clear(points: np.ndarray) -> np.ndarray:  # the upper half see-through
        return np.where(points[:, 1:2] > 0, 0.25, 1.0).astype(np.float32)

    return RawAsset(
        vertices=vertices,
        faces=faces,
        color_field=lambda p: np.full((len(p), 3), 0.5, np.float32),
        material_field=lambda p: np.full((len(p), 2), (0.3, 0.9), np.float32),
        alpha_field=half_clear if alpha else None,
    )


def test_alpha_field_gives_a_blended_rgba_base_colour(sphere_mesh, tmp_path: Path) -> None:
    options = PipelineOptions(target_faces=600, texture_size=256)
    result = run_pipeline(_raw(sphere_mesh, alpha=True), options)
    path = tmp_path / "alpha.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)
    material = _material(result.asset)
    assert material["alphaMode"] == "BLEND"
    assert "metallicRoughnessTexture" in material["pbrMetallicRoughness"]
    opaque = run_pipeline(_raw(sphere_mesh, alpha=False), options)
    assert "alphaMode" not in _material(opaque.asset)
