"""A job's resolved request, as stored with the job and read back by the worker.

:class:`JobSpec` is made once, at admission (admission.py), with the seed drawn and the
parameters resolved against the model's schema. It is stored in SQLite through the protocol's
codec and rebuilt through it (``to_json`` / ``from_json`` mirror each other), so the worker runs
exactly what was admitted: no second set of defaults, no hand-built dicts. The input images
are files beside the job (``inputs/<file>``), decoded once more by the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from backend.geometry.raw_asset import RawAsset
from backend.models.base import GenerationRequest, ImagePixels
from shared_protocol.codec import from_wire, to_wire
from shared_protocol.messages import (
    DEFAULT_FACES,
    DEFAULT_FORMAT,
    DEFAULT_TEXTURE_SIZE,
    OutputFormat,
    Task,
    ViewName,
)


@dataclass(frozen=True)
class StoredImage:
    """An input image kept as the client sent it: ``inputs/<file>`` in the job's folder."""

    file: str
    view: ViewName = "front"


@dataclass(frozen=True)
class JobSpec:
    """Everything one run needs, resolved; ``parameters`` holds every parameter's value."""

    model: str
    task: Task
    prompt: str = ""
    seed: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    target_faces: int = DEFAULT_FACES
    texture_size: int = DEFAULT_TEXTURE_SIZE
    pbr: bool = True
    output_format: OutputFormat = DEFAULT_FORMAT
    name: str = ""
    images: tuple[StoredImage, ...] = ()
    # Protocol 3: the sent mesh (``inputs/<mesh_file>``) or the job whose raw output is reused,
    # and the game-ready options of the geometry pipeline.
    mesh_file: str | None = None
    source_job: str | None = None
    keep_inner: bool = False
    lods: int = 0
    quads: bool = False
    keep_uvs: bool = False

    def to_json(self) -> dict[str, Any]:
        frames: list[bytes] = []
        data = to_wire(self, frames)
        assert not frames, "a JobSpec holds no bytes: images are files beside the job"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobSpec:
        return from_wire(cls, data, [], "spec", set())

    def generation_request(
        self, images: tuple[ImagePixels, ...], mesh: RawAsset | None = None
    ) -> GenerationRequest:
        """What the model sees: this spec with its images (and mesh) decoded."""
        return GenerationRequest(
            task=self.task,
            prompt=self.prompt,
            images=images,
            seed=self.seed,
            parameters=dict(self.parameters),
            target_faces=self.target_faces,
            texture_size=self.texture_size,
            mesh=mesh,
        )
