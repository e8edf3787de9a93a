"""Task ``texture`` end to end with tiny Hunyuan3D weights: a real backend process (tiny random
shape, delight and paint models on the CPU), a real client, the artist's GLB in, the same
geometry and UV layout out with a painted texture, through the Khronos validator."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest

from backend.models.hunyuan3d.testing import write_tiny_components, write_tiny_weights
from shared_protocol.client import BackendClient
from shared_protocol.errors import ProtocolError
from shared_protocol.messages import (
    ImageInput,
    JobFailedEvent,
    MeshInput,
    ResultEvent,
    SubmitReply,
    SubmitRequest,
)
from tests.support import mesh_glbs
from tests.support.backend_process import BackendProcess
from tests.support.gltf_validator import error_messages, validate

pytestmark = pytest.mark.slow
MODEL = "hunyuan3d-2mini"
TINY_PAINT = {"paint_steps": 1, "delight_steps": 1, "paint_view_size": 16}


def subject_png() -> bytes:
    from PIL import Image

    pixels = np.zeros((48, 48, 4), np.uint8)
    yy, xx = np.mgrid[:48, :48]
    inside = (yy - 24) ** 2 + (xx - 24) ** 2 < 15**2
    pixels[inside] = (230, 120, 40, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def uv_layout(glb: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(positions, UVs) of the GLB's one mesh, rounded, rows sorted by position."""
    import trimesh

    mesh = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh", process=False)
    rows = np.hstack([np.round(mesh.vertices, 4), np.round(mesh.visual.uv, 3)])
    rows = np.unique(rows, axis=0)
    return rows[:, :3], rows[:, 3:]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-hunyuan")
    shape = write_tiny_weights(root / "shape", MODEL)
    paint = write_tiny_components(root / "components", MODEL)["paint"]
    weights = ("--weights", f"{MODEL}={shape}", "--weights", f"{MODEL}:paint={paint}")
    with BackendProcess(root / "data", *weights) as process:
        yield process


def test_texture_keeps_the_geometry_and_the_artists_uvs(backend, tmp_path) -> None:
    glb = mesh_glbs.textured_ball()
    request = SubmitRequest(
        model=MODEL, task="texture", images=(ImageInput(data=subject_png()),),
        mesh=MeshInput(data=glb, name="Ball"), keep_uvs=True, target_faces=500,
        texture_size=256, parameters=TINY_PAINT,
    )  # fmt: skip
    with BackendClient(backend.address) as client:
        reply = client.request(request, timeout_s=30)
        assert isinstance(reply, SubmitReply)
        deadline = time.monotonic() + 600
        result = None
        while time.monotonic() < deadline and result is None:
            envelope = client.receive(timeout_s=1.0)
            message = envelope and envelope.message
            if isinstance(message, (ResultEvent, JobFailedEvent)):
                result = message
    assert isinstance(result, ResultEvent), getattr(result, "error", result)
    import trimesh

    source = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh", process=False)
    # target_faces 500 is below the mesh's faces: texture keeps them all anyway.
    assert result.manifest.faces == len(source.faces) > 500
    assert result.manifest.quality["views_seen"] > 0.5  # the paint views cover the ball
    before_positions, before_uvs = uv_layout(glb)
    after_positions, after_uvs = uv_layout(result.asset)
    assert after_positions.shape == before_positions.shape
    np.testing.assert_allclose(after_uvs, before_uvs, atol=2e-3)  # the layout is the artist's
    path = tmp_path / "painted.glb"
    path.write_bytes(result.asset)
    assert error_messages(validate(path)) == []


def test_texture_refusals(backend) -> None:
    glb = mesh_glbs.textured_ball()
    with BackendClient(backend.address) as client:
        no_look = SubmitRequest(model=MODEL, task="texture", mesh=MeshInput(data=glb))
        with pytest.raises(ProtocolError) as caught:
            client.request(no_look, timeout_s=15)
        assert (caught.value.code.value, caught.value.field) == ("missing_field", "body.images")
        no_mesh = SubmitRequest(model=MODEL, task="texture",
                                images=(ImageInput(data=subject_png()),))  # fmt: skip
        with pytest.raises(ProtocolError) as caught:
            client.request(no_mesh, timeout_s=15)
        assert (caught.value.code.value, caught.value.field) == ("missing_field", "body.mesh")
