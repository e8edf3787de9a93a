"""trellis2-4b end to end on tiny weights: a validated GLB with PBR maps; the cascade; errors."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import CancelToken
from backend.geometry.pipeline import PipelineOptions, run_pipeline
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.trellis2 import testing
from backend.models.trellis2.adapter import Trellis2Adapter
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.support.gltf_validator import error_messages, validate


def _image() -> np.ndarray:
    pixels = np.zeros((80, 80, 4), np.uint8)
    pixels[20:60, 25:55] = (180, 90, 40, 255)
    return pixels


def _request(adapter: Trellis2Adapter, **overrides) -> GenerationRequest:
    parameters = {**testing.TINY_PARAMETERS["trellis2-4b"], "background": "alpha", **overrides}
    request = GenerationRequest(task="image", images=(ImagePixels(_image()),), seed=3,
                                parameters=parameters)  # fmt: skip
    return adapter.check_inputs(request)


@pytest.fixture(scope="module")
def adapter(tiny_trellis2) -> Trellis2Adapter:
    folder, components = tiny_trellis2
    model = Trellis2Adapter(folder)
    model.component_dirs = dict(components)
    model.load("cpu")
    return model


def _glb_document(payload: bytes) -> dict:
    length = struct.unpack_from("<I", payload, 12)[0]
    return json.loads(payload[20 : 20 + length])


def test_image_to_validated_glb_with_pbr_maps(adapter: Trellis2Adapter, tmp_path: Path) -> None:
    stages: list[str] = []
    raw = adapter.generate(_request(adapter), lambda s, *a, **k: stages.append(s), CancelToken())
    assert raw.material_field is not None and raw.color_field is not None
    assert raw.alpha_field is not None  # random tiny attributes: some voxels see-through
    assert stages[0] == "condition" and stages[-1] == "mesh"
    result = run_pipeline(raw, PipelineOptions(target_faces=500, texture_size=256))
    path = tmp_path / "trellis2.glb"
    path.write_bytes(result.asset)
    report = validate(path)
    assert report["issues"]["numErrors"] == 0, error_messages(report)
    material = _glb_document(result.asset)["materials"][0]
    pbr = material["pbrMetallicRoughness"]
    assert {"baseColorTexture", "metallicRoughnessTexture"} <= set(pbr)
    assert "normalTexture" in material
    assert material["alphaMode"] == "BLEND"


def test_same_seed_same_asset_and_the_cascade_doubles_the_grid(adapter: Trellis2Adapter) -> None:
    from backend.models.trellis2.pipeline import Trellis2Request

    def run(pipeline_type: str):
        one_step = {
            role: dataclasses.replace(sampler.settings, steps=1)
            for role, sampler in adapter.pipeline.config.samplers.items()
        }
        request = Trellis2Request(
            images=(_image(),), seed=5, pipeline_type=pipeline_type,
            structure=one_step["sparse_structure_sampler"], shape=one_step["shape_slat_sampler"],
            texture=one_step["tex_slat_sampler"],
        )  # fmt: skip
        return adapter.pipeline.run(request, lambda *a: None)

    first, again = run("512"), run("512")
    np.testing.assert_array_equal(first.mesh.faces.numpy(), again.mesh.faces.numpy())
    cascade = run("1024_cascade")
    assert cascade.resolution == 2 * first.resolution == 64
    assert cascade.pbr.keys.max() >= first.resolution**3 // 2  # voxels past the 512 grid


def test_missing_dinov3_says_how_to_request_access(tiny_trellis2) -> None:
    folder, components = tiny_trellis2
    model = Trellis2Adapter(folder)
    model.component_dirs = {"decoders": components["decoders"]}
    with pytest.raises(ProtocolError) as error:
        model.load("cpu")
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    assert "dinov3" in str(error.value)
    from backend.models.trellis2.dinov3 import load_dinov3

    with pytest.raises(ProtocolError) as error:
        load_dinov3(None, "cpu")
    assert "licence" in (error.value.hint or "") and "dinov3-vitl16" in error.value.hint
