"""results.py + runtime: a finished job with a splat file -> the mesh, then its point cloud.

The add-on connects to a peer on a real socket that holds one finished TRELLIS-like job: its
asset is a real GLB (Blender's exporter) and its manifest lists ``gaussians.ply``, served in
slices. (No real backend here can make one: TRELLIS needs torch, which Blender's environment
lacks; the backend's side runs for real in tests/backend/jobs/test_result_files.py and
test_end_to_end.py.) Importing the job from the queue fetches the asset, imports it, fetches
the splat file and puts the cloud on the mesh, all from the timer; with the preference off the
splat file is never asked for."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from shared_protocol.framing import PROTOCOL_VERSION, decode, encode
from shared_protocol.messages import (
    FetchReply,
    FetchRequest,
    HelloReply,
    HelloRequest,
    JobInfo,
    ListJobsReply,
    ListJobsRequest,
    Manifest,
    PingReply,
    ResultFile,
    StatusReply,
    StatusRequest,
)
from tests.blender_addon.conftest import pump
from tests.blender_addon.test_splat_import import glb, splat_ply  # noqa: F401 (a fixture)

JOB = "0123456789abcdef"
COUNT = 300


@pytest.fixture
def peer(peer_factory, glb):  # noqa: F811
    rng = np.random.default_rng(2)
    ply = splat_ply(rng.uniform(-0.5, 0.5, (COUNT, 3)), rng.normal(size=(COUNT, 3)),
                    rng.normal(size=COUNT))  # fmt: skip
    asset = glb.read_bytes()
    manifest = Manifest(format="glb", faces=12, vertices=24, bbox_min=(0, 0, 0),
                        bbox_max=(1, 1, 1), seed=3, model="trellis-image-large",
                        extra_files=(ResultFile("gaussians.ply", "model/x-ply", len(ply),
                                                to_asset=tuple(np.eye(4).ravel())),))  # fmt: skip
    job = JobInfo(job_id=JOB, state="succeeded", model="trellis-image-large", task="image",
                  prompt="", name="a lamp", priority=0, created_at=1.0, manifest=manifest)
    asked: list[FetchRequest] = []

    def reply(frames):
        request = decode(frames)
        message = request.message
        if isinstance(message, HelloRequest):
            answer = HelloReply(backend_version="t", protocol_version=PROTOCOL_VERSION, gpus=(),
                                models=(), max_frame_bytes=4096, max_frames=4,
                                max_prompt_chars=100)  # fmt: skip
        elif isinstance(message, ListJobsRequest):
            answer = ListJobsReply(jobs=(job,))
        elif isinstance(message, StatusRequest):
            answer = StatusReply(job=job)
        elif isinstance(message, FetchRequest):
            asked.append(message)
            data = ply if message.file else asset
            end = message.offset + (message.max_bytes or len(data))
            answer = FetchReply(job_id=JOB, manifest=manifest, asset=data[message.offset:end],
                                file=message.file, offset=message.offset,
                                total_bytes=len(data))  # fmt: skip
        else:
            answer = PingReply(server_time=0.0)
        return encode(answer, parent_id=request.msg_id)

    made = peer_factory(reply)
    made.asked = asked
    return made


def connect_to(addon, peer) -> None:
    addon.preferences.preferences().backend_address = peer.address
    addon.runtime.connect()
    pump(addon, lambda: JOB in addon.runtime.STATE.offered, timeout_s=20)


def test_importing_a_job_brings_its_gaussians_onto_the_mesh(fresh, peer) -> None:
    connect_to(fresh, peer)
    assert fresh.results.request_import(JOB) is None  # fetched first
    pump(fresh, lambda: any(o.name.endswith("_gaussians") for o in bpy.data.objects),
         timeout_s=20)  # fmt: skip
    cloud = next(o for o in bpy.data.objects if o.name.endswith("_gaussians"))
    mesh = cloud.parent
    assert mesh is not None and mesh["dreamcad_job_id"] == JOB
    assert cloud.name == f"{mesh.name}_gaussians" and len(cloud.data.vertices) == COUNT
    slices = [a for a in peer.asked if a.file == "gaussians.ply"]
    assert len(slices) > 2 and all(a.max_bytes <= 2048 for a in slices)  # half a frame each
    saved = fresh.runtime.STATE.result_files[JOB]
    assert saved.with_name(f"{saved.stem}.gaussians.ply").is_file()


def test_with_the_preference_off_the_splat_file_is_not_fetched(fresh, peer) -> None:
    fresh.preferences.preferences().import_gaussians = False
    try:
        connect_to(fresh, peer)
        fresh.results.request_import(JOB)
        pump(fresh, lambda: any(o.get("dreamcad_job_id") == JOB for o in bpy.data.objects),
             timeout_s=20)  # fmt: skip
        for _ in range(20):
            fresh.runtime.tick()
        assert not any(o.name.endswith("_gaussians") for o in bpy.data.objects)
        assert not any(a.file for a in peer.asked)
    finally:
        fresh.preferences.preferences().import_gaussians = True
