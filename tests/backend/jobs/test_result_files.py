"""result_files.py and the path of a model's extra files: runner -> manifest -> queue -> fetch.

A real model (the built-in procedural one, subclassed to hand over a file of its own vertices
in a turned frame) runs through the real job runner and geometry pipeline; the result is stored
by the real queue on a real SQLite store and fetched through the real fetch handler, whole and
in slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend import handlers
from backend.cancellation import CancelToken
from backend.cli.extra_files import beside, write_local
from backend.jobs import result_files
from backend.jobs.queue import JobQueue
from backend.jobs.runner import run_job
from backend.jobs.spec import JobSpec
from backend.jobs.store import JobStore
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import ModelCache, ModelRegistry
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.framing import DEFAULT_LIMITS
from shared_protocol.messages import FetchReply, FetchRequest

# The file's frame turned a quarter about Y, then moved: its points must come back on the mesh.
FILE_TO_MODEL = np.array([[0.0, 0, 1, 0.3], [0, 1, 0, -0.2], [-1, 0, 0, 0.1], [0, 0, 0, 1]])


class PointsAdapter(ProceduralAdapter):
    """Procedural, plus ``points.bin``: its raw vertices (float32) in FILE_TO_MODEL's frame."""

    id = "procedural-points"

    def _generate(self, request, progress, cancel):
        raw = super()._generate(request, progress, cancel)
        homogeneous = np.c_[raw.vertices.astype(np.float64), np.ones(len(raw.vertices))]
        in_file = homogeneous @ np.linalg.inv(FILE_TO_MODEL).T
        raw.extra_files["points.bin"] = in_file[:, :3].astype("<f4").tobytes()
        raw.extra_file_frames["points.bin"] = FILE_TO_MODEL
        raw.extra_files["notes.json"] = b'{"frame": "none"}'
        return raw


def run_points_job(height_m_faces: int = 1000):
    registry = ModelRegistry({PointsAdapter.id: PointsAdapter})
    spec = JobSpec(model=PointsAdapter.id, task="text", prompt="a red cube", seed=3,
                   parameters={"resolution": 40, "steps": 2}, target_faces=height_m_faces,
                   texture_size=256)  # fmt: skip
    return run_job(ModelCache(registry, "cpu", None), spec, (), lambda *_: None, CancelToken())


@pytest.fixture(scope="module")
def output():
    return run_points_job()


def test_the_manifest_lists_the_extra_files_with_sizes_and_frames(output) -> None:
    listed = {entry.name: entry for entry in output.manifest.extra_files}
    assert set(listed) == {"notes.json", "points.bin"} == set(output.extra_files)
    assert listed["points.bin"].size_bytes == len(output.extra_files["points.bin"])
    assert listed["points.bin"].media_type == "application/octet-stream"
    assert listed["notes.json"].media_type == "application/json"
    assert listed["notes.json"].to_asset == ()  # no frame given: no coordinates to place


def test_to_asset_puts_the_files_points_on_the_finished_asset(output) -> None:
    """The pipeline moves the mesh onto the ground: the file's map must follow that move."""
    matrix = np.array(next(e for e in output.manifest.extra_files
                           if e.name == "points.bin").to_asset).reshape(4, 4)  # fmt: skip
    points = np.frombuffer(output.extra_files["points.bin"], "<f4").reshape(-1, 3)
    placed = np.c_[points, np.ones(len(points))] @ matrix.T
    low, high = placed[:, :3].min(axis=0), placed[:, :3].max(axis=0)
    # The raw surface and the decimated asset share their bounds to within a small fraction.
    assert np.allclose(low, output.manifest.bbox_min, atol=0.02)
    assert np.allclose(high, output.manifest.bbox_max, atol=0.02)
    assert low[1] == pytest.approx(0.0, abs=0.02)  # on the ground, like the asset


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 65, "a\\b", "a b"])
def test_unsafe_names_are_refused(name) -> None:
    with pytest.raises(ValueError):
        result_files.check_name(name)


def stored_job(tmp_path: Path, output) -> tuple[handlers.HandlerContext, str]:
    """A job run for real, claimed and finished by a real queue; the context fetch runs in."""
    queue = JobQueue(JobStore(tmp_path / "jobs.sqlite3", tmp_path / "jobs"), lambda *_: None)
    spec = JobSpec(model=PointsAdapter.id, task="text", prompt="a red cube", seed=3)
    record, _ = queue.submit(spec, ())
    claimed, _ = queue.claim(0)
    queue.succeed(claimed.job_id, output.manifest, output.asset, output.preview,
                  output.extra_files)  # fmt: skip
    context = handlers.HandlerContext(queue, ModelRegistry({PointsAdapter.id: PointsAdapter}),
                                      DEFAULT_LIMITS, lambda _job_id: None)  # fmt: skip
    return context, record.job_id


def test_fetch_gives_a_named_file_whole_and_in_slices(tmp_path, output) -> None:
    context, job_id = stored_job(tmp_path, output)
    main = handlers.fetch(context, FetchRequest(job_id=job_id))
    assert main.asset == output.asset and main.file == "" and main.preview
    assert main.manifest.extra_files == output.manifest.extra_files
    expected = output.extra_files["points.bin"]
    whole = handlers.fetch(context, FetchRequest(job_id=job_id, file="points.bin"))
    assert isinstance(whole, FetchReply) and whole.asset == expected
    assert whole.file == "points.bin" and whole.total_bytes == len(expected)
    assert whole.preview is None  # the preview comes with the main asset only
    parts, offset = [], 0
    while offset < len(expected):
        reply = handlers.fetch(context, FetchRequest(job_id=job_id, file="points.bin",
                                                     offset=offset, max_bytes=1000))  # fmt: skip
        assert reply.offset == offset and 0 < len(reply.asset) <= 1000
        parts.append(reply.asset)
        offset += len(reply.asset)
    assert b"".join(parts) == expected


def test_fetch_of_a_file_the_job_does_not_have_names_the_field(tmp_path, output) -> None:
    context, job_id = stored_job(tmp_path, output)
    for name in ("missing.ply", "../jobs.sqlite3"):
        with pytest.raises(ProtocolError) as caught:
            handlers.fetch(context, FetchRequest(job_id=job_id, file=name))
        assert caught.value.code == ErrorCode.INVALID_FIELD and caught.value.field == "body.file"
    with pytest.raises(ProtocolError) as caught:
        handlers.fetch(context, FetchRequest(job_id=job_id, file="points.bin", offset=10**9))
    assert caught.value.code == ErrorCode.OUT_OF_RANGE


def test_deleting_the_job_removes_its_extra_files(tmp_path, output) -> None:
    context, job_id = stored_job(tmp_path, output)
    path = result_files.file_path(context.queue.store.job_dir(job_id), "points.bin")
    assert path.read_bytes() == output.extra_files["points.bin"]
    context.queue.delete(job_id)
    assert not path.exists()


def test_the_cli_writes_extra_files_beside_the_asset(tmp_path) -> None:
    output = tmp_path / "out.glb"
    assert beside(output, "gaussians.ply") == tmp_path / "out.gaussians.ply"
    paths = write_local(output, {"b.ply": b"2", "a.json": b"1"})
    assert [p.name for p in paths] == ["out.a.json", "out.b.ply"]
    assert paths[1].read_bytes() == b"2"
