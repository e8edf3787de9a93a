"""admit(): one gate for the server and the CLI; fields named in the message the client sent."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from backend.jobs.admission import admit
from backend.jobs.queue import JobQueue
from backend.jobs.spec import JobSpec, StoredImage
from backend.jobs.store import JobRecord, JobStore
from backend.models.registry import ModelRegistry
from shared_protocol.errors import ProtocolError
from shared_protocol.messages import ImageInput, SubmitRequest


def png(size: int = 32) -> bytes:
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[8:24, 8:24] = (200, 40, 40, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def registry() -> ModelRegistry:
    return ModelRegistry()


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"model": "nope"}, "unknown_model", "body.model"),
        ({"task": "image"}, "unsupported_task", "body.task"),
        ({"prompt": "   "}, "missing_field", "body.prompt"),
        ({"texture_size": 300}, "out_of_range", "body.texture_size"),
        ({"parameters": {"resolution": 10_000}}, "out_of_range", "body.parameters.resolution"),
        ({"parameters": {"steps": 2.5}}, "invalid_parameter", "body.parameters.steps"),
        ({"parameters": {"nope": 1}}, "invalid_parameter", "body.parameters.nope"),
        ({"images": (ImageInput(b"not an image"),)}, "invalid_image", "body.images[0].data"),
    ],
)
def test_refusals_name_the_field_in_the_message(registry, changes, code, field) -> None:
    message = SubmitRequest(**{"model": "procedural", "task": "text", "prompt": "a cube",
                               **changes})  # fmt: skip
    with pytest.raises(ProtocolError) as caught:
        admit(registry, message)
    assert (caught.value.info.code, caught.value.info.field) == (code, field)


def test_nan_in_a_float_parameter_is_refused(registry) -> None:
    message = SubmitRequest(model="inflate", task="image", images=(ImageInput(png()),),
                            parameters={"thickness": float("nan")})  # fmt: skip
    with pytest.raises(ProtocolError) as caught:
        admit(registry, message)
    assert caught.value.info.field == "body.parameters.thickness"


def test_the_spec_is_resolved_once_and_round_trips_through_the_store(registry, tmp_path) -> None:
    message = SubmitRequest(model="inflate", task="image", name="disc", target_faces=1500,
                            images=(ImageInput(png(), view="front"),),
                            parameters={"thickness": 1})  # fmt: skip
    admission = admit(registry, message)
    spec = admission.spec
    assert spec.parameters["thickness"] == 1.0 and isinstance(spec.parameters["thickness"], float)
    assert spec.parameters["resolution"] == 160  # the default, filled in at admission
    assert 0 <= spec.seed < 2**32 and spec.images == (StoredImage("0.png", "front"),)
    assert JobSpec.from_json(spec.to_json()) == spec

    queue = JobQueue(JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs"), lambda *_: None)
    record, _ = queue.submit(spec, admission.encoded_images, priority=0)
    stored = queue.store.get(record.job_id)
    assert queue.spec(stored) == spec
    assert (queue.store.job_dir(record.job_id) / "inputs" / "0.png").read_bytes() == png()


def test_rows_written_before_typed_specs_still_run(tmp_path) -> None:
    """A job queued by the previous version (request dict without the columns) is readable."""
    queue = JobQueue(JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs"), lambda *_: None)
    old = {"parameters": {"resolution": 32, "steps": 4}, "target_faces": 900,
           "texture_size": 512, "pbr": True, "output_format": "glb", "images": []}  # fmt: skip
    record = JobRecord(job_id="old1", seq=0, state="queued", priority=0, model="procedural",
                       task="text", prompt="a torus", name="t", seed=7, request=old,
                       created_at=0.0)  # fmt: skip
    queue.store.insert(record)
    spec = queue.spec(queue.store.get("old1"))
    assert (spec.model, spec.seed, spec.target_faces, spec.texture_size, spec.name) == (
        "procedural", 7, 900, 512, "t"
    )
