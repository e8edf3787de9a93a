"""The family's tiny-weights writers (backend/models/hunyuan3d/testing.py) feed the real
loading path: official file names, every card's files present, a quick CPU run per model."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.cancellation import CancelToken
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.hunyuan3d.adapter import Hunyuan3D2MiniAdapter
from backend.models.hunyuan3d.testing import (
    ADAPTERS,
    TINY_PARAMETERS,
    write_tiny_components,
    write_tiny_weights,
)
from tests.backend.models.hunyuan3d.test_adapter import Recorder, subject_image


@pytest.mark.parametrize("model_id", sorted(ADAPTERS))
def test_tiny_weights_load_and_run(model_id: str, tmp_path: Path) -> None:
    cls = ADAPTERS[model_id]
    adapter = cls(write_tiny_weights(tmp_path, model_id))
    assert adapter.weights_present()
    adapter.load("cpu")
    task = cls.tasks[0]
    views = ("front", "back")[: cls.max_images]
    request = GenerationRequest(
        task=task, images=tuple(ImagePixels(subject_image(i), v) for i, v in enumerate(views)),
        parameters=TINY_PARAMETERS[model_id],
    )  # fmt: skip
    recorder = Recorder()
    raw = adapter.generate(adapter.check_inputs(request), recorder, CancelToken())
    assert len(raw.faces) > 0 and not raw.warnings
    assert recorder.stages == ["conditioning", "sampling", "decoding", "meshing"]
    assert set(recorder.stages) <= set(cls.stage_weights)


def test_tiny_components_are_found_and_used(tmp_path: Path) -> None:
    """The turbo VAE decodes flashvdm jobs; the paint folders satisfy texture=paint's check."""
    adapter = Hunyuan3D2MiniAdapter(write_tiny_weights(tmp_path / "w", "hunyuan3d-2mini"))
    adapter.component_dirs = write_tiny_components(tmp_path / "c", "hunyuan3d-2mini")
    adapter.load("cpu")
    parameters = {**TINY_PARAMETERS["hunyuan3d-2mini"], "decoding": "flashvdm"}
    request = GenerationRequest(task="image", images=(ImagePixels(subject_image()),),
                                parameters=parameters)  # fmt: skip
    raw = adapter.generate(request, Recorder(), CancelToken())
    assert not raw.warnings and adapter._models is not None
    assert adapter._models.turbo_vae is not None
    paint = GenerationRequest(task="image", images=(ImagePixels(subject_image()),),
                              parameters={"texture": "paint"})  # fmt: skip
    assert adapter.check_inputs(paint).parameters["texture"] == "paint"
