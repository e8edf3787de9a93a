"""A ``texture=paint`` job end to end: tiny random shape, delight and paint models through
``run_job`` and the real geometry pipeline (CPU).

The tiny random shape model gives a blob of a few thousand faces, so the one stand-in here
subdivides its marching-cubes mesh (midpoint, shape unchanged) past 100k faces: that is what a
real Hunyuan3D mesh at octree resolution 256-384 holds, and what a "High" (100k) request must
keep.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.jobs.runner import run_job
from backend.jobs.spec import JobSpec
from backend.models.base import ImagePixels
from backend.models.hunyuan3d import pipeline as shape_pipeline
from backend.models.hunyuan3d.adapter import Hunyuan3D2MiniAdapter
from backend.models.hunyuan3d.pipeline import ShapePipeline, ShapeResult
from backend.models.registry import ModelCache, ModelRegistry
from backend.models.testing.hunyuan_paint import write_tiny_paint_model
from backend.models.testing.instruct_pix2pix import write_tiny_instruct_pix2pix
from tests.backend.models.hunyuan3d.conftest import load_reference, prefixed_tensors
from tests.support.gltf_validator import error_messages, validate

TARGET = 100_000


def subject_image(size: int = 48) -> np.ndarray:
    """(size, size, 4) uint8: a noisy disc on transparency."""
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 4), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    pixels[..., 3] = np.where((yy - size / 2) ** 2 + (xx - size / 3) ** 2 < (size / 3) ** 2, 255, 0)
    return pixels


class DenseShapePipeline(ShapePipeline):
    """The real tiny shape pipeline, its mesh subdivided until it has more than 100k faces."""

    faces: list[int] = []

    def __call__(self, *args, **kwargs) -> ShapeResult:
        result = super().__call__(*args, **kwargs)
        vertices, faces = result.vertices, result.faces
        while len(faces) <= 1.2 * TARGET:
            vertices, faces = trimesh.remesh.subdivide(vertices, faces)
        DenseShapePipeline.faces.append(len(faces))
        result.vertices, result.faces = vertices.astype(np.float32), faces.astype(np.int64)
        return result


class WatchedMini(Hunyuan3D2MiniAdapter):
    """The real hunyuan3d-2mini adapter; it keeps what it hands to the geometry pipeline."""

    assets: list[RawAsset] = []

    def _generate(self, request, progress, cancel):
        asset = super()._generate(request, progress, cancel)
        WatchedMini.assets.append(asset)
        return asset


def write_weights(folder: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The tiny turbo shape variant (as the hub ships it: fp16 safetensors) and the tiny
    delight and paint folders of the ``paint`` component, where ``download --with paint`` puts
    them (the HF cache's snapshot of tencent/Hunyuan3D-2), for the registry to find."""
    from huggingface_hub import constants
    from safetensors.torch import save_file

    reference = load_reference("turbo")
    variant = folder / "shape" / Hunyuan3D2MiniAdapter.variant_folder("turbo")
    variant.mkdir(parents=True)
    (variant / "config.yaml").write_text(str(reference["config_yaml"]), encoding="utf-8")
    weights = {k: v.half() for k, v in prefixed_tensors(reference, "weight:").items()}
    save_file(weights, str(variant / "model.fp16.safetensors"))
    repo = folder / "hub" / "models--tencent--Hunyuan3D-2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)  # the branch -> commit file of the HF cache
    snapshot = repo / "snapshots" / ("0" * 40)
    write_tiny_instruct_pix2pix(snapshot / "hunyuan3d-delight-v2-0")
    write_tiny_paint_model(snapshot / "hunyuan3d-paint-v2-0")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder / "hub"))
    return {"hunyuan3d-2mini": folder / "shape", "paint": snapshot}


def test_a_100k_paint_request_keeps_100k_faces_and_bakes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shape_pipeline, "ShapePipeline", DenseShapePipeline)
    DenseShapePipeline.faces.clear()
    WatchedMini.assets.clear()
    folders = write_weights(tmp_path, monkeypatch)
    registry = ModelRegistry({"hunyuan3d-2mini": WatchedMini},
                             {"hunyuan3d-2mini": folders["hunyuan3d-2mini"]})  # fmt: skip
    assert registry.create("hunyuan3d-2mini").component_dirs == {"paint": folders["paint"]}
    spec = JobSpec(
        model="hunyuan3d-2mini", task="image", seed=1, target_faces=TARGET, texture_size=256,
        parameters={"steps": 2, "octree_resolution": 96, "num_chunks": 65_536,
                    "texture": "paint", "paint_steps": 2, "delight_steps": 2,
                    "paint_view_size": 16},
    )  # fmt: skip
    events = []
    output = run_job(ModelCache(registry, "cpu", None), spec, (ImagePixels(subject_image()),),
                     lambda progress, preview: events.append(progress), CancelToken())

    (dense_faces,) = DenseShapePipeline.faces
    assert dense_faces > TARGET
    assert abs(output.manifest.faces - TARGET) <= 0.02 * TARGET, output.manifest.faces
    # The model hands over its full-resolution shape and the painted views, no atlas of its own:
    # decimation, unwrapping and the one bake are the geometry pipeline's.
    (raw,) = WatchedMini.assets
    assert len(raw.faces) == dense_faces
    assert raw.uvs is None and raw.texture is None and raw.views is not None
    assert len(raw.views.images) == 6
    stages = [event.stage for event in events]
    messages = {event.message for event in events}
    assert {"texture", "bake"} <= set(stages) and "texture_bake" not in stages
    assert {"delight", "paint"} <= messages  # paint's own stages, folded into "texture"
    assert output.manifest.quality["views_seen"] > 0.5
    path = tmp_path / "painted.glb"
    path.write_bytes(output.asset)
    assert error_messages(validate(path)) == []
