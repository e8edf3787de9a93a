"""Mesh in, game-ready out through a real backend process and a real client (protocol 3).

``optimize`` of a sent GLB (hidden inner shell removed, LOD chain, the mesh's own texture baked,
through the Khronos validator), ``optimize`` again from the finished job's kept raw output (no
mesh sent), and every bad input with its code and field.
"""

from __future__ import annotations

import io
import itertools
import time

import numpy as np
import pytest

from shared_protocol.client import BackendClient
from shared_protocol.errors import ProtocolError
from shared_protocol.messages import (
    DeleteRequest,
    JobFailedEvent,
    MeshInput,
    ResultEvent,
    StatusReply,
    StatusRequest,
    SubmitReply,
    SubmitRequest,
)
from tests.support import mesh_glbs, shell_meshes
from tests.support.backend_process import BackendProcess
from tests.support.gltf_validator import error_messages, validate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    with BackendProcess(tmp_path_factory.mktemp("mesh-in") / "data") as process:
        yield process


@pytest.fixture
def client(backend):
    with BackendClient(backend.address) as connection:
        yield connection


@pytest.fixture(scope="module")
def shells():
    return mesh_glbs.textured_shells()


def run_to_end(client: BackendClient, request: SubmitRequest, timeout_s: float = 180):
    reply = client.request(request, timeout_s=15)
    assert isinstance(reply, SubmitReply), reply
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        envelope = client.receive(timeout_s=0.5)
        message = envelope and envelope.message
        if isinstance(message, (ResultEvent, JobFailedEvent)) and message.job_id == reply.job_id:
            return reply.job_id, message
    raise TimeoutError(f"job {reply.job_id} did not end")


def refusal(client: BackendClient, request: SubmitRequest) -> tuple[str, str | None]:
    """(code, field) of the error_reply ``request`` gets; it must have a hint."""
    with pytest.raises(ProtocolError) as caught:
        client.request(request, timeout_s=15)
    assert caught.value.hint
    return caught.value.code.value, caught.value.field


def optimize(mesh: bytes | None = None, **fields) -> SubmitRequest:
    return SubmitRequest(
        model="mesh-optimize",
        task="optimize",
        mesh=None if mesh is None else MeshInput(data=mesh, name="Ball"),
        texture_size=256,
        **{"target_faces": 1000, **fields},
    )


def base_colour_of(glb: bytes):
    """(base colour image as uint8 RGB, per-vertex UVs and positions of the first mesh)."""
    import trimesh

    scene = trimesh.load(io.BytesIO(glb), file_type="glb", process=False)
    meshes = [scene.geometry[name] for _node, name in
              ((n, scene.graph[n][1]) for n in scene.graph.nodes_geometry)]  # fmt: skip
    lod0 = max(meshes, key=lambda m: len(m.faces))
    image = np.asarray(lod0.visual.material.baseColorTexture.convert("RGB"))
    return image, np.asarray(lod0.visual.uv), np.asarray(lod0.vertices)


def test_optimize_a_sent_glb_then_again_from_the_finished_job(client, shells, tmp_path) -> None:
    glb, _outer_faces, inner_faces = shells
    job_id, result = run_to_end(client, optimize(glb, lods=2))
    assert isinstance(result, ResultEvent), getattr(result, "error", None)
    manifest = result.manifest
    assert manifest.model == "mesh-optimize"
    assert manifest.quality["inner_faces_removed"] == inner_faces  # the hidden ball went
    assert 0.9 * 1000 <= manifest.faces <= 1.1 * 1000
    assert [lod.name for lod in manifest.lods] == ["Ball_LOD0", "Ball_LOD1", "Ball_LOD2"]
    faces = [lod.faces for lod in manifest.lods]
    assert faces[0] == manifest.faces and all(
        0.35 < b / a < 0.65 for a, b in itertools.pairwise(faces)
    )
    assert manifest.quality["raw_output_mb"] > 0
    path = tmp_path / "ball.glb"
    path.write_bytes(result.asset)
    assert error_messages(validate(path)) == []
    # The mesh's own texture is baked: -x is LEFT_COLOUR, +x RIGHT_COLOUR on the new UVs.
    image, uvs, vertices = base_colour_of(result.asset)
    height, width = image.shape[:2]
    texel = image[
        np.clip((uvs[:, 1] * 0 + (1 - uvs[:, 1])) * height, 0, height - 1).astype(int),
        np.clip(uvs[:, 0] * width, 0, width - 1).astype(int),
    ].astype(float)
    left = vertices[:, 0] < -0.3
    right = vertices[:, 0] > 0.3
    assert np.abs(texel[left].mean(0) - mesh_glbs.LEFT_COLOUR).max() < 40
    assert np.abs(texel[right].mean(0) - mesh_glbs.RIGHT_COLOUR).max() < 40

    # Again from the kept raw output: no mesh sent, another budget, no LODs, seconds.
    started = time.monotonic()
    again_id, again = run_to_end(client, optimize(source_job=job_id, target_faces=600))
    assert isinstance(again, ResultEvent), getattr(again, "error", None)
    assert time.monotonic() - started < 60
    assert 0.9 * 600 <= again.manifest.faces <= 1.1 * 600 and again.manifest.lods == ()
    status = client.request(StatusRequest(job_id=again_id), timeout_s=10)
    assert isinstance(status, StatusReply) and status.job.source_job == job_id
    path.write_bytes(again.asset)
    assert error_messages(validate(path)) == []

    # The re-optimized job kept the raw output too: the source can go, it still works.
    client.request(DeleteRequest(job_id=job_id), timeout_s=10)
    _third, third = run_to_end(client, optimize(source_job=again_id, target_faces=500))
    assert isinstance(third, ResultEvent), getattr(third, "error", None)
    assert refusal(client, optimize(source_job=job_id))[0] == "unknown_job"


def test_generated_jobs_get_the_game_ready_options_and_keep_their_raw_output(client) -> None:
    request = SubmitRequest(
        model="procedural", task="text", prompt="a torus", target_faces=1200, texture_size=256,
        parameters={"resolution": 48, "steps": 6}, lods=1, keep_inner=True,
    )  # fmt: skip
    job_id, result = run_to_end(client, request)
    assert isinstance(result, ResultEvent), getattr(result, "error", None)
    assert len(result.manifest.lods) == 2
    assert "inner_faces_removed" not in result.manifest.quality  # keep_inner was passed on
    _again, again = run_to_end(client, optimize(source_job=job_id, target_faces=800))
    assert isinstance(again, ResultEvent), getattr(again, "error", None)
    assert again.manifest.lods == ()


def _bad_cases(shells):
    glb = shells[0]
    big_v, big_f = shell_meshes.sphere(1.0, 12)
    return {
        "not a glb": (optimize(b"solid ascii stl\n" + bytes(64)), "invalid_mesh", "body.mesh.data"),
        "broken glb": (optimize(glb[:40]), "invalid_mesh", "body.mesh.data"),
        "empty": (optimize(mesh_glbs.empty_glb()), "invalid_mesh", "body.mesh.data"),
        "media type": (
            SubmitRequest(model="mesh-optimize", task="optimize",
                          mesh=MeshInput(data=glb, media_type="model/obj")),
            "invalid_mesh", "body.mesh.media_type",
        ),
        "no mesh": (optimize(), "missing_field", "body.mesh"),
        "mesh for a generating task": (
            SubmitRequest(model="procedural", task="text", prompt="a cube",
                          mesh=MeshInput(data=glb)),
            "invalid_field", "body.mesh",
        ),
        "model without the task": (
            SubmitRequest(model="procedural", task="optimize", mesh=MeshInput(data=glb)),
            "unsupported_task", "body.task",
        ),
        "texture without a look": (
            SubmitRequest(model="mesh-optimize", task="texture", mesh=MeshInput(data=glb)),
            "missing_field", "body.images",
        ),
        "both": (optimize(glb, source_job="abc"), "invalid_field", "body.source_job"),
        "unknown source": (optimize(source_job="0123456789abcdef"), "unknown_job",
                           "body.source_job"),
        "lods in obj": (optimize(glb, lods=2, output_format="obj"), "invalid_field", "body.lods"),
        "too many faces": (optimize(_too_many(big_v, big_f)), "mesh_too_large", "body.mesh.data"),
    }  # fmt: skip


def _too_many(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    """A GLB whose scene draws one small mesh from enough nodes to pass the triangle limit."""
    import trimesh

    from shared_protocol.messages import MAX_MESH_FACES

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    scene = trimesh.Scene()
    for index in range(MAX_MESH_FACES // len(faces) + 1):
        scene.add_geometry(mesh, geom_name="part", node_name=f"n{index}")
    return scene.export(file_type="glb")


@pytest.mark.parametrize(
    "case",
    ["not a glb", "broken glb", "empty", "media type", "no mesh", "mesh for a generating task",
     "model without the task", "texture without a look", "both", "unknown source",
     "lods in obj", "too many faces"],
)  # fmt: skip
def test_bad_mesh_inputs_get_their_code_and_field(client, shells, case) -> None:
    request, code, field = _bad_cases(shells)[case]
    assert refusal(client, request) == (code, field)


def test_source_job_not_finished_or_without_raw_output(client, backend, shells) -> None:
    slow = SubmitRequest(
        model="procedural", task="text", prompt="a torus", texture_size=256,
        parameters={"resolution": 320, "steps": 320},
    )  # fmt: skip
    reply = client.request(slow, timeout_s=10)
    assert isinstance(reply, SubmitReply)
    early = refusal(client, optimize(source_job=reply.job_id))
    assert early == ("job_not_finished", "body.source_job")
    client.request(DeleteRequest(job_id=reply.job_id), timeout_s=10)
    # A finished job whose raw file is gone (as one made before protocol 3 has none).
    job_id, result = run_to_end(client, optimize(shells[0]))
    assert isinstance(result, ResultEvent)
    (backend.data_dir / "jobs" / job_id / "raw.npz").unlink()
    assert refusal(client, optimize(source_job=job_id)) == ("source_unavailable", "body.source_job")
