"""The triposr adapter end to end on a tiny random model saved in the official layout."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.cancellation import Cancelled, CancelToken
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.common.background import (
    composite_on_grey,
    remove_background,
    resize_foreground,
)
from backend.models.triposr import pipeline
from backend.models.triposr.adapter import TripoSRAdapter
from backend.models.triposr.testing import TINY_PARAMETERS, write_tiny_weights
from shared_protocol.errors import ErrorCode, ProtocolError

REPO = Path(__file__).resolve().parents[4]


class Recorder:
    """A ProgressCallback that keeps every event (and can cancel at a chosen stage)."""

    def __init__(self, cancel: CancelToken | None = None, cancel_at: str = "") -> None:
        self.events: list[tuple[str, int, int, np.ndarray | None]] = []
        self.cancel, self.cancel_at = cancel, cancel_at

    def __call__(self, stage: str, step: int, total: int, message: str = "",
                 preview: np.ndarray | None = None) -> None:
        self.events.append((stage, step, total, preview))
        if self.cancel is not None and stage == self.cancel_at:
            self.cancel.cancel()


def subject_image(size: int = 80) -> np.ndarray:
    """RGBA: a two-colour disc on a transparent background."""
    rows, cols = np.mgrid[0:size, 0:size]
    inside = (rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (size / 3) ** 2
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., 0] = np.where(cols < size / 2, 220, 40)
    rgba[..., 1] = 90
    rgba[..., 2] = np.where(cols < size / 2, 30, 200)
    rgba[..., 3] = np.where(inside, 255, 0)
    return rgba


def surface_threshold(adapter: TripoSRAdapter, image: np.ndarray, resolution: int) -> float:
    """A density level the random field crosses (random weights have no "object" at 25)."""
    assert adapter.pipeline is not None
    model = adapter.pipeline.model
    planes = pipeline.encode(model, pipeline.condition_image(image), torch.float32)
    grid = pipeline.density_grid(model, planes, resolution, 4096)
    return float(np.quantile(grid, 0.8))


def request(image: np.ndarray, **parameters: object) -> GenerationRequest:
    return GenerationRequest(task="image", images=(ImagePixels(image),), parameters=parameters)


@pytest.fixture
def adapter(tiny_folder: Path) -> TripoSRAdapter:
    adapter = TripoSRAdapter(tiny_folder)
    adapter.load("cpu")
    return adapter


def test_generate_returns_a_coloured_mesh_in_the_backend_frame(adapter: TripoSRAdapter) -> None:
    image = subject_image()
    threshold = surface_threshold(adapter, image, 32)
    recorder = Recorder()
    asset = adapter.generate(
        request(image, mc_resolution=32, chunk_size=1000, density_threshold=threshold),
        recorder, CancelToken(),
    )
    assert len(asset.faces) > 0 and asset.vertices.dtype == np.float32
    assert np.abs(asset.vertices).max() <= adapter.pipeline.model.config.radius + 1e-5
    assert asset.vertex_colors is not None and asset.color_field is not None
    assert asset.vertex_colors.min() >= 0.0 and asset.vertex_colors.max() <= 1.0
    np.testing.assert_allclose(asset.color_field(asset.vertices), asset.vertex_colors, atol=1e-6)
    stages = [event[0] for event in recorder.events]
    assert set(stages) <= set(TripoSRAdapter.stage_weights)
    assert stages.index("preprocess") < stages.index("encode") < stages.index("field")
    assert stages[-1] == "surface"
    previews = [event[3] for event in recorder.events if event[3] is not None]
    assert previews and previews[0].shape[2] == 3
    field_steps = [event for event in recorder.events if event[0] == "field"]
    assert field_steps[-1][1] == field_steps[-1][2] == 32**3


def test_same_request_same_mesh(adapter: TripoSRAdapter) -> None:
    image = subject_image()
    threshold = surface_threshold(adapter, image, 24)
    first = adapter.generate(request(image, mc_resolution=24, density_threshold=threshold),
                             Recorder(), CancelToken())
    second = adapter.generate(request(image, mc_resolution=24, chunk_size=0,
                                      density_threshold=threshold), Recorder(), CancelToken())
    np.testing.assert_allclose(first.vertices, second.vertices, atol=1e-6)
    assert np.array_equal(first.faces, second.faces)


def test_no_surface_is_a_model_error(adapter: TripoSRAdapter) -> None:
    with pytest.raises(ProtocolError) as error:
        adapter.generate(request(subject_image(), mc_resolution=32, density_threshold=1000.0),
                         Recorder(), CancelToken())
    assert error.value.code is ErrorCode.MODEL_FAILED


def test_cancel_during_the_field_query(adapter: TripoSRAdapter) -> None:
    cancel = CancelToken()
    recorder = Recorder(cancel, cancel_at="encode")
    with pytest.raises(Cancelled):
        adapter.generate(request(subject_image(), mc_resolution=32, chunk_size=512),
                         recorder, cancel)
    assert "field" not in [event[0] for event in recorder.events]


def test_bad_parameters_are_rejected_up_front(adapter: TripoSRAdapter) -> None:
    for parameters, code in (({"mc_resolution": 8}, ErrorCode.OUT_OF_RANGE),
                             ({"background": "magic"}, ErrorCode.INVALID_PARAMETER),
                             ({"steps": 3}, ErrorCode.INVALID_PARAMETER)):
        with pytest.raises(ProtocolError) as error:
            adapter.check_inputs(request(subject_image(), **parameters))
        assert error.value.code is code


def test_missing_weights(tmp_path: Path) -> None:
    adapter = TripoSRAdapter(tmp_path / "nowhere")
    assert not adapter.weights_present()
    with pytest.raises(ProtocolError) as error:
        adapter.load("cpu")
    assert error.value.code is ErrorCode.WEIGHTS_MISSING


def test_unknown_dtype(tiny_folder: Path) -> None:
    with pytest.raises(ProtocolError) as error:
        TripoSRAdapter(tiny_folder).load("cpu", dtype="int8")
    assert error.value.code is ErrorCode.INVALID_PARAMETER


def test_registered_as_a_model_entry_point() -> None:
    found = {e.name: e.value for e in entry_points(group="dreamcad.models")}
    assert found.get("triposr") == "backend.models.triposr.adapter:TripoSRAdapter"


def test_catalogue_import_loads_no_torch() -> None:
    """The card is read without torch or the network (they load in ``_load``)."""
    code = (
        "import sys; import backend.models.triposr.adapter; "
        "bad = [m for m in ('torch', 'backend.models.triposr.network') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def framed_preview(adapter: TripoSRAdapter, image: np.ndarray, **parameters: object) -> np.ndarray:
    """The conditioning image the network saw (the preview of a small input is full size)."""
    recorder = Recorder()
    adapter.generate(request(image, **TINY_PARAMETERS["triposr"], **parameters), recorder,
                     CancelToken())
    return next(event[3] for event in recorder.events if event[3] is not None)


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory: pytest.TempPathFactory) -> TripoSRAdapter:
    adapter = TripoSRAdapter(write_tiny_weights(tmp_path_factory.mktemp("tiny"), "triposr"))
    adapter.load("cpu")
    return adapter


def test_family_frames_the_shared_cut_out_and_never_cuts_again(
    tiny_adapter: TripoSRAdapter,
) -> None:
    """An opaque photo is cut out once, by the template; TripoSR only frames it on grey."""
    photo = np.full((90, 90, 4), 255, np.uint8)
    photo[..., :3] = (235, 235, 230)  # a plain light backdrop
    photo[25:70, 30:60, :3] = (40, 110, 200)  # the subject
    cutout = remove_background(photo, method="classical").rgba
    expected = composite_on_grey(resize_foreground(cutout, 0.7))
    seen = framed_preview(tiny_adapter, photo, background="classical", foreground_ratio=0.7)
    np.testing.assert_array_equal(seen, expected)
    # background "none": the image goes in exactly as sent (upstream's --no-remove-bg).
    seen = framed_preview(tiny_adapter, photo, background="none")
    np.testing.assert_array_equal(seen, photo[..., :3])


@pytest.mark.parametrize("fill", ["gradient", "noise", "black", "white"])
def test_tiny_parameters_give_a_surface_for_any_subject(
    tiny_adapter: TripoSRAdapter, fill: str
) -> None:
    """TINY_PARAMETERS' fixed threshold crosses the tiny model's field whatever the image."""
    image = subject_image(64)
    colours = {
        "gradient": image[..., :3],
        "noise": np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "black": np.zeros((64, 64, 3), np.uint8),
        "white": np.full((64, 64, 3), 255, np.uint8),
    }
    image[..., :3] = colours[fill]
    asset = tiny_adapter.generate(request(image, **TINY_PARAMETERS["triposr"]), Recorder(),
                                  CancelToken())
    assert len(asset.faces) > 0 and asset.vertex_colors is not None


@pytest.mark.parametrize("stage", ["preprocess", "encode", "field", "surface"])
def test_cancel_at_each_stage_stops_at_the_next_event(
    tiny_adapter: TripoSRAdapter, stage: str
) -> None:
    cancel = CancelToken()
    recorder = Recorder(cancel, cancel_at=stage)
    parameters = {**TINY_PARAMETERS["triposr"], "chunk_size": 512}  # several field chunks
    with pytest.raises(Cancelled):
        tiny_adapter.generate(request(subject_image(), **parameters), recorder, cancel)
    first = next(i for i, event in enumerate(recorder.events) if event[0] == stage)
    assert len(recorder.events) == first + 1  # nothing reported after the cancel


def test_unload_drops_the_network(tiny_folder: Path) -> None:
    adapter = TripoSRAdapter(tiny_folder)
    adapter.load("cpu")
    assert adapter.pipeline is not None and adapter.loaded
    adapter.unload()
    assert adapter.pipeline is None and not adapter.loaded
    with pytest.raises(ProtocolError) as error:
        adapter.generate(request(subject_image()), Recorder(), CancelToken())
    assert error.value.code is ErrorCode.MODEL_FAILED
