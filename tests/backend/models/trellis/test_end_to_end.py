"""TRELLIS end to end on tiny random weights in the official layout, to a validated GLB.

An image job through a real backend process (``--weights`` for the model and its DINOv2
component, a real ZeroMQ client, fetch), and a text model and a multi-view request through the
job runner and the geometry pipeline (decimate, unwrap, bake the decoded colour field)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from backend.cancellation import CancelToken
from backend.cli.extra_files import fetch_file
from backend.jobs.runner import run_job
from backend.jobs.spec import JobSpec
from backend.models.base import ImagePixels
from backend.models.registry import ModelCache, ModelRegistry
from backend.models.trellis import testing
from backend.models.trellis.adapter import TrellisImageAdapter, TrellisTextLargeAdapter
from shared_protocol.client import BackendClient
from shared_protocol.messages import (
    FetchReply,
    FetchRequest,
    ImageInput,
    JobFailedEvent,
    ProgressEvent,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)
from tests.backend.models.trellis.conftest import TinyModel, cutout
from tests.backend.models.trellis.test_gaussian_ply import PROPERTIES, read_ply
from tests.support.backend_process import BackendProcess
from tests.support.gltf_validator import error_messages, validate

pytestmark = pytest.mark.slow
MODEL_STAGES = ("condition", "structure", "latent", "decode", "mesh")


def photo_png() -> bytes:
    """An opaque photo (orange disc on a grey table): the backend cuts it out itself."""
    yy, xx = np.mgrid[:96, :96]
    pixels = np.full((96, 96, 3), 215, np.uint8)
    pixels[(yy - 48) ** 2 + (xx - 48) ** 2 < 30**2] = (230, 120, 40)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def events_until_end(client: BackendClient, job_id: str, timeout_s: float = 240) -> list:
    events, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        if envelope is None or getattr(envelope.message, "job_id", None) != job_id:
            continue
        events.append(envelope.message)
        if isinstance(envelope.message, ResultEvent | JobFailedEvent):
            return events
    raise TimeoutError(f"job {job_id} did not end")


def test_an_image_job_through_the_backend_gives_a_valid_glb(
    tiny_image: TinyModel, tmp_path: Path
) -> None:
    dinov2 = tiny_image.components["dinov2"]
    weights = ("--weights", f"trellis-image-large={tiny_image.folder}",
               "--weights", f"trellis-image-large:dinov2={dinov2}")  # fmt: skip
    with BackendProcess(tmp_path / "data", *weights) as backend, \
            BackendClient(backend.address) as client:  # fmt: skip
        request = SubmitRequest(
            model="trellis-image-large", task="image", images=(ImageInput(photo_png()),),
            seed=11, target_faces=5000, texture_size=256,
            parameters=testing.TINY_PARAMETERS["trellis-image-large"],
        )  # fmt: skip
        accepted = client.request(request, timeout_s=30)
        assert isinstance(accepted, SubmitReply), accepted
        events = events_until_end(client, accepted.job_id)
        assert isinstance(events[-1], ResultEvent), (events[-1], backend.log())
        fetched = client.request(FetchRequest(job_id=accepted.job_id), timeout_s=30)
        # In slices, as a client does when the file is larger than a frame.
        splats = fetch_file(client, accepted.job_id, "gaussians.ply", 30, slice_bytes=4096)
    assert isinstance(fetched, FetchReply) and fetched.asset == events[-1].asset
    stages = {e.progress.stage for e in events if isinstance(e, ProgressEvent)}
    assert set(MODEL_STAGES) <= stages
    manifest = fetched.manifest
    assert manifest.model == "trellis-image-large" and manifest.seed == 11
    assert 0 < manifest.faces <= 5000 and manifest.up_axis == "+Y"
    assert manifest.quality["texture_coverage"] > 0.02
    path = tmp_path / "trellis.glb"
    path.write_bytes(fetched.asset)
    assert error_messages(validate(path)) == []
    check_gaussians(manifest, splats)


def check_gaussians(manifest, data: bytes) -> None:
    """The job's second file: a 3DGS ply listed in the manifest, whose centres ``to_asset``
    puts on the asset (random weights: around it, within a fifth of its size)."""
    (entry,) = manifest.extra_files
    assert (entry.name, entry.media_type, entry.size_bytes) == (
        "gaussians.ply", "model/x-ply", len(data))  # fmt: skip
    ply = read_ply(data)
    assert list(ply) == PROPERTIES and len(ply["x"]) > 0
    assert all(np.isfinite(values).all() for values in ply.values())
    rotation = np.stack([ply[f"rot_{i}"] for i in range(4)], 1)
    assert np.allclose(np.linalg.norm(rotation, axis=1), 1, atol=1e-4)
    centres = np.stack([ply["x"], ply["y"], ply["z"], np.ones_like(ply["x"])], 1)
    placed = centres @ np.array(entry.to_asset).reshape(4, 4).T
    low, high = np.array(manifest.bbox_min), np.array(manifest.bbox_max)
    margin = 0.2 * (high - low).max()
    assert (placed[:, :3] >= low - margin).all() and (placed[:, :3] <= high + margin).all()


def run(model: TinyModel, cls: type, spec: JobSpec, images=()) -> tuple:
    paths = {model.model_id: model.folder}
    paths.update({f"{model.model_id}:{name}": path for name, path in model.components.items()})
    registry = ModelRegistry({model.model_id: cls}, weights_paths=paths)
    events = []
    output = run_job(ModelCache(registry, "cpu", None), spec, images,
                     lambda progress, preview: events.append(progress), CancelToken())  # fmt: skip
    return output, events


@pytest.fixture(scope="module")
def tiny_text_large(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    root = tmp_path_factory.mktemp("trellis-text-large")
    folder = testing.write_tiny_weights(root / "model", "trellis-text-large")
    components = testing.write_tiny_components(root / "components", "trellis-text-large")
    return TinyModel("trellis-text-large", folder, components)


def test_a_text_model_runs_to_a_textured_glb(tiny_text_large: TinyModel, tmp_path: Path) -> None:
    """The decoded colour is baked: the texture varies where the atlas has charts. (Random
    weights make a mesh of some 90 small pieces; decimated much below 5000 faces the UV step
    leaves its charts no area at all, so the faces are kept high here.)"""
    spec = JobSpec(model="trellis-text-large", task="text", prompt="a small wooden chair", seed=4,
                   parameters=testing.TINY_PARAMETERS["trellis-text-large"], target_faces=5000,
                   texture_size=256)  # fmt: skip
    output, events = run(tiny_text_large, TrellisTextLargeAdapter, spec)
    stages = [event.stage for event in events]
    assert all(stage in stages for stage in (*MODEL_STAGES, "bake", "export"))
    fractions = [event.fraction for event in events]
    assert fractions == sorted(fractions)
    assert 0 < output.manifest.faces <= 5000
    assert output.manifest.quality["texture_coverage"] > 0.02
    path = tmp_path / "text.glb"
    path.write_bytes(output.asset)
    assert error_messages(validate(path)) == []
    scene = trimesh.load(path, process=False)
    (mesh,) = scene.geometry.values()
    texture = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(texture, axis=0)) > 100  # baked from the field, not one flat colour


def test_several_views_run_to_a_glb_with_a_warning_for_unseen_views(
    tiny_image: TinyModel, tmp_path: Path
) -> None:
    views = tuple(ImagePixels(cutout(box=box), view=view) for box, view in
                  (((20, 16, 44, 48), "front"), ((12, 20, 52, 44), "left"),
                   ((22, 10, 42, 54), "back")))  # fmt: skip
    spec = JobSpec(model="trellis-image-large", task="multi_image", seed=6,
                   parameters={**testing.TINY_PARAMETERS["trellis-image-large"],
                               "structure_steps": 2, "multi_image_mode": "stochastic"},
                   target_faces=600, texture_size=256)  # fmt: skip
    output, _ = run(TinyModel("trellis-image-large", tiny_image.folder, tiny_image.components),
                    TrellisImageAdapter, spec, views)  # fmt: skip
    assert any("3 views but 2 structure steps" in w for w in output.manifest.warnings)
    path = tmp_path / "views.glb"
    path.write_bytes(output.asset)
    assert error_messages(validate(path)) == []


def test_the_radiance_field_source_bakes_a_valid_glb(tiny_image: TinyModel, tmp_path) -> None:
    spec = JobSpec(model="trellis-image-large", task="image", seed=2,
                   parameters={**testing.TINY_PARAMETERS["trellis-image-large"],
                               "gaussians": False, "colour_source": "radiance_field"},
                   target_faces=5000, texture_size=256)  # fmt: skip
    output, _ = run(tiny_image, TrellisImageAdapter, spec, (ImagePixels(cutout()),))
    assert output.manifest.extra_files == () and output.extra_files == {}
    assert output.manifest.quality["texture_coverage"] > 0.02
    path = tmp_path / "rf.glb"
    path.write_bytes(output.asset)
    assert error_messages(validate(path)) == []
    scene = trimesh.load(path, process=False)
    (mesh,) = scene.geometry.values()
    texture = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(texture, axis=0)) > 100  # baked from the RF, not one flat colour
