"""Run the standard inputs through models, one job per input and seed, as ``generate`` does.

Each run goes through the job path itself (admission, ``run_job``: load, generate, pipeline), so
its stage times are the ones a user's job has. The model stays loaded between its runs (the
first run's ``load`` is the cold one). A run that fails is recorded with its error, not raised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from backend.bench import inputs, metrics
from backend.cancellation import CancelToken
from backend.models.registry import ModelCache, ModelRegistry
from shared_protocol.messages import SubmitRequest

# Tasks the bench has standard inputs for, in the order a model's tasks are tried.
BENCH_TASKS = ("image", "text", "optimize")
COUNTS = ("pieces", "non_manifold_edges", "flipped_faces", "inner_faces_removed")


@dataclass
class BenchRun:
    """One (model, input, seed): stage seconds, peak VRAM, faces and production figures."""

    model: str
    task: str
    input: str
    seed: int
    wall_s: float = 0.0
    stages_s: dict[str, float] = field(default_factory=dict)
    peak_vram_mb: float | None = None
    faces: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def key(self) -> str:
        return f"{self.model}/{self.task}/{self.input}/seed{self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, **asdict(self)}


def bench_models(registry: ModelRegistry, wanted: list[str] | None) -> list[str]:
    """``wanted``, or every model whose weights are here and that has a task we bench."""
    if wanted:
        unknown = [m for m in wanted if m not in registry.ids()]
        if unknown:
            raise SystemExit(f"unknown model(s): {', '.join(unknown)}; see `models`")
        return wanted
    chosen = []
    for model_id in registry.ids():
        adapter = registry.create(model_id)
        if adapter.info().weights_present and set(adapter.tasks) & set(BENCH_TASKS):
            chosen.append(model_id)
    return chosen


def run_model(
    registry: ModelRegistry,
    model_id: str,
    device: str,
    seeds: list[int],
    target_faces: int,
    texture_size: int,
    on_run: Callable[[BenchRun], None] | None = None,
) -> list[BenchRun]:
    """Every standard input of the model's benched tasks, once per seed."""
    from backend.geometry.mesh_input import read_glb
    from backend.jobs.admission import admit
    from backend.jobs.runner import run_job

    tasks = [t for t in BENCH_TASKS if t in registry.adapter_class(model_id).tasks]
    cache = ModelCache(registry, device, None)
    runs = []
    for task in tasks:
        for item in inputs.standard_inputs(task):
            for seed in seeds:
                run = BenchRun(model_id, task, item.name, seed)
                try:
                    admission = admit(
                        registry,
                        SubmitRequest(
                            model=model_id,
                            task=task,
                            prompt=item.prompt,  # type: ignore[arg-type]
                            images=item.images,
                            mesh=item.mesh,
                            seed=seed,
                            target_faces=target_faces,
                            texture_size=texture_size,
                        ),
                    )
                    mesh = None
                    if admission.encoded_mesh is not None:
                        mesh = read_glb(admission.encoded_mesh, "mesh", item.name)
                    started = time.perf_counter()
                    output = run_job(
                        cache,
                        admission.spec,
                        admission.request.images,
                        lambda *_: None,
                        CancelToken(),
                        mesh=mesh,
                    )
                    run.wall_s = round(time.perf_counter() - started, 4)
                    manifest = output.manifest
                    run.stages_s = dict(manifest.timings_s)
                    run.peak_vram_mb = manifest.peak_vram_mb
                    run.faces = manifest.faces
                    run.figures = {
                        name: manifest.quality[name]
                        for name in metrics.MANIFEST_FIGURES
                        if name in manifest.quality
                    }
                    run.figures = {  # the manifest's figures are floats; counts read as ints
                        name: int(value) if name in COUNTS else value
                        for name, value in run.figures.items()
                    }
                    run.figures["watertight"] = bool(run.figures.get("watertight", False))
                    run.figures.update(metrics.asset_figures(output.asset))
                except Exception as error:  # a failed run is a result, not a crash
                    run.error = f"{type(error).__name__}: {error}"
                runs.append(run)
                if on_run is not None:
                    on_run(run)
    return runs
