"""Multi-view sampling with a tiny random paint model written in the official folder layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.cancellation import Cancelled, CancelToken
from backend.models.hunyuan3d.paint.loading import load_paint_models
from backend.models.hunyuan3d.paint.multiview import camera_id, generate_views
from backend.models.hunyuan3d.paint.render import CAMERA_AZIMUTHS, CAMERA_ELEVATIONS
from backend.models.testing.hunyuan_paint import write_tiny_paint_model
from shared_protocol.errors import ErrorCode, ProtocolError


@pytest.fixture(scope="module")
def tiny_paint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_paint_model(tmp_path_factory.mktemp("hunyuan3d-paint-v2-0"))


def test_camera_ids_of_the_paint_camera_set() -> None:
    ids = [camera_id(a, e) for a, e in zip(CAMERA_AZIMUTHS, CAMERA_ELEVATIONS, strict=True)]
    assert ids == [21, 12, 15, 18, 43, 37]  # upstream's formula on its six cameras
    with pytest.raises(ProtocolError) as error:
        camera_id(0, 45)
    assert error.value.code == ErrorCode.INVALID_PARAMETER


def _inputs(views: int = 2, size: int = 16) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(3)
    return (torch.rand(size, size, 3, generator=g), torch.rand(views, size, size, 3, generator=g),
            torch.rand(views, size, size, 3, generator=g))


def test_generate_views_is_seeded_and_reports_steps(tiny_paint: Path) -> None:
    models = load_paint_models(tiny_paint, "cpu", torch.float32)
    reference, normals, positions = _inputs()
    calls: list[tuple[str, int, int]] = []

    def run(seed: int, guidance: float = 2.0) -> torch.Tensor:
        return generate_views(models, reference, normals, positions, [21, 12], steps=3,
                              seed=seed, guidance_scale=guidance,
                              progress=lambda *a: calls.append(a), cancel=CancelToken())

    first = run(0)
    assert first.shape == (2, 16, 16, 3) and first.min() >= 0 and first.max() <= 1
    assert calls[-1] == ("paint", 3, 3)
    torch.testing.assert_close(first, run(0))
    assert not torch.allclose(first, run(1))
    assert not torch.allclose(first, run(0, guidance=1.0))  # guidance changes the result


def test_generate_views_cancels(tiny_paint: Path) -> None:
    models = load_paint_models(tiny_paint, "cpu", torch.float32)
    cancel = CancelToken()
    with pytest.raises(Cancelled):
        generate_views(models, *_inputs(), [21, 12], steps=3, progress=lambda *a: cancel.cancel(),
                       cancel=cancel)


def test_missing_parts_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError) as error:
        load_paint_models(tmp_path, "cpu", torch.float32)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
    folder = write_tiny_paint_model(tmp_path / "paint")
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ProtocolError) as error:
        load_paint_models(folder, "cpu", torch.float32)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING
