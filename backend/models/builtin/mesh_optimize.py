"""Built-in ``mesh-optimize`` model: task ``optimize``, the artist's mesh handed on as it is.

Why a model and not a special path in the runner: a model is how a task is offered (it is
listed in ``hello_reply`` with its task, so a client discovers ``optimize`` like any other),
queued, scheduled on a worker, reported and cancelled; the contract suite checks it like the
others. It loads nothing (no weights, no torch, 0 MB of VRAM): its raw output is the input mesh
(``request.mesh``: the sent GLB, or the kept raw output of the ``source_job``), and the geometry
pipeline after it does the work (clean, inner shells, decimate or quads, unwrap, bake the mesh's
own colours and normal detail, LODs).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import GenerationRequest, ModelAdapter, ProgressCallback
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import OPTIMIZE_MODEL


class MeshOptimizeAdapter(ModelAdapter):
    id = OPTIMIZE_MODEL
    name = "Mesh optimize (built-in)"
    description = (
        "Your mesh -> game-ready: cleaned, hidden inner shells removed, reduced to the face "
        "budget (or quads), unwrapped, its own colours and detail baked; optional LODs. "
        "No download, no GPU."
    )
    tasks = ("optimize",)
    license = "MIT"
    vram_mb = 0
    parameters = ()
    stage_weights = {"read": 0.5, "check": 0.5}

    def _load(self, device: str, dtype: str) -> None:
        """Nothing to load: the geometry pipeline does the work."""

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        mesh = request.mesh
        if mesh is None:
            raise ProtocolError(
                ErrorCode.MISSING_FIELD, "task 'optimize' needs a mesh (or a source_job)",
                field="mesh",
            )  # fmt: skip
        progress("read", 0, 1, "reading the mesh")
        cancel.raise_if_cancelled()
        progress("read", 1, 1, f"{len(mesh.faces)} triangles, {len(mesh.vertices)} vertices")
        cancel.raise_if_cancelled()
        progress("check", 0, 1, "checking the positions")
        if not np.isfinite(mesh.vertices).all():
            raise ProtocolError(
                ErrorCode.INVALID_MESH, "the mesh has non-finite (NaN or infinite) positions",
                field="mesh.data",
            )  # fmt: skip
        progress("check", 1, 1, "positions are finite")
        # A copy: the pipeline may be handed the same RawAsset again (re-optimize in a process).
        return dataclasses.replace(mesh, warnings=list(mesh.warnings))
