"""One job end to end without a server (the code path of workers and `generate`), and how
failures become coded errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from backend.cancellation import Cancelled, CancelToken
from backend.jobs.progress import ProgressTracker
from backend.jobs.runner import error_from_exception, run_job
from backend.jobs.spec import JobSpec
from backend.models.builtin.procedural import ProceduralAdapter
from backend.models.registry import ModelCache, ModelRegistry
from shared_protocol.errors import ErrorCode, ProtocolError


def spec(**params) -> JobSpec:
    return JobSpec(
        model="procedural", task="text", prompt="a yellow capsule", seed=5,
        parameters={"resolution": 48, "steps": 4, **params}, target_faces=1000, texture_size=256,
    )  # fmt: skip


def test_run_job_reports_monotonic_progress_and_a_manifest() -> None:
    seen = []
    output = run_job(ModelCache(ModelRegistry(), "cpu", None), spec(), (),
                     lambda progress, preview: seen.append(progress), CancelToken())
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] > 0.9
    manifest = output.manifest
    assert output.asset[:4] == b"glTF"
    assert abs(manifest.faces - 1000) <= 20 and manifest.seed == 5
    assert {"load", "generate"} <= set(manifest.timings_s)
    assert any(k.startswith("pipeline.") for k in manifest.timings_s)
    assert manifest.bbox_min[1] == pytest.approx(0.0, abs=1e-5)


def test_cancel_stops_the_model_loop() -> None:
    token = CancelToken()
    steps = []

    def on_progress(progress, preview):
        steps.append(progress.step)
        if progress.stage == "field" and progress.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        run_job(ModelCache(ModelRegistry(), "cpu", None), spec(steps=16), (), on_progress, token)
    assert max(steps) == 2  # not one step more


def test_error_codes_for_failures() -> None:
    assert error_from_exception(Cancelled())[0].code == "cancelled"
    assert error_from_exception(Cancelled())[1] is True
    given = ProtocolError(ErrorCode.WEIGHTS_MISSING, "no weights")
    assert error_from_exception(given)[0] == given.info
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert error_from_exception(oom)[0].code == "cuda_out_of_memory"
    assert error_from_exception(RuntimeError("boom"))[0].code == "model_failed"


class FailingProcedural(ProceduralAdapter):
    """The procedural model, made to fail in its own code or in the geometry pipeline."""

    id = "failing"

    def _generate(self, request, progress, cancel):
        if request.prompt == "model bug":
            raise RuntimeError("a bug in the model")
        raw = super()._generate(request, progress, cancel)

        def broken_field(points):
            raise ValueError("a bug met while baking")

        return dataclasses.replace(raw, color_field=broken_field, vertex_colors=None)


@pytest.mark.parametrize(("prompt", "code"), [("model bug", "model_failed"),
                                              ("a sphere", "geometry_failed")])
def test_failures_are_coded_by_the_stage_that_raised(prompt, code) -> None:
    cache = ModelCache(ModelRegistry({"failing": FailingProcedural}), "cpu", None)
    job = JobSpec(model="failing", task="text", prompt=prompt, parameters={"resolution": 24},
                  target_faces=500, texture_size=256)
    with pytest.raises(Exception) as caught:
        run_job(cache, job, (), lambda progress, preview: None, CancelToken())
    info, cancelled = error_from_exception(caught.value)
    assert (info.code, cancelled) == (code, False)
    assert "a bug" in info.message


def test_progress_tracker_spreads_undeclared_stages_and_never_goes_back() -> None:
    tracker = ProgressTracker({"sample": 0.8})
    a = tracker.update("model", "sample", 5, 10).fraction
    b = tracker.update("model", "decode", 0, 4).fraction
    c = tracker.update("model", "decode", 4, 4).fraction
    d = tracker.update("pipeline", "clean", 0, 1).fraction
    assert 0 < a <= b <= c <= d <= 1.0
    assert tracker.update("model", "sample", 1, 10).fraction == d  # a late report cannot rewind


def test_the_raw_output_is_kept_beside_the_pipeline_and_the_stalls_are_reported(tmp_path) -> None:
    kept = tmp_path / "job" / "raw.npz"
    output = run_job(ModelCache(ModelRegistry(), "cpu", None), spec(), (),
                     lambda progress, preview: None, CancelToken(), keep_raw=kept)  # fmt: skip
    timings = output.manifest.timings_s
    assert kept.is_file() and not kept.with_name("raw.npz.partial").exists()
    assert output.manifest.quality["raw_output_mb"] == pytest.approx(
        kept.stat().st_size / 2**20, abs=1e-3
    )
    assert {"keep_raw", "keep_raw.wait", "stalls.gc_s", "stalls.waited_s"} <= set(timings)
    assert all(timings[k] >= 0.0 for k in ("stalls.gc_s", "stalls.waited_s"))


def test_a_raw_output_that_cannot_be_written_fails_the_job_as_geometry(tmp_path) -> None:
    (tmp_path / "job").write_text("a file where the job's folder should be")
    with pytest.raises(Exception) as caught:
        run_job(ModelCache(ModelRegistry(), "cpu", None), spec(), (),
                lambda progress, preview: None, CancelToken(),
                keep_raw=tmp_path / "job" / "raw.npz")  # fmt: skip
    info, cancelled = error_from_exception(caught.value)
    assert (info.code, cancelled) == (ErrorCode.GEOMETRY_FAILED, False)
    assert "job" in info.message  # the path it could not write


def test_a_cancel_during_the_pipeline_wins_over_the_raw_write_and_leaves_no_partial(
    tmp_path,
) -> None:
    token = CancelToken()

    def on_progress(progress, preview):
        if progress.stage == "decimate":
            token.cancel()

    kept = tmp_path / "raw.npz"
    with pytest.raises(Cancelled):
        run_job(ModelCache(ModelRegistry(), "cpu", None), spec(), (), on_progress, token,
                keep_raw=kept)  # fmt: skip
    assert not kept.with_name("raw.npz.partial").exists()  # the write ended before the raise
