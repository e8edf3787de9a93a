"""The one gate from a submit request to a job: decode, draw the seed, resolve, check.

The server's ``submit`` handler and the CLI's ``generate`` both call :func:`admit`, so they
accept and refuse exactly the same requests. Models name a field relative to the request they
were given (``images[0]``, ``parameters.steps``); this edge turns it into the path in the
message the client sent (``body.images[0]``), as the protocol promises.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from backend.images import decode_image
from backend.jobs.game_ready import check_options
from backend.jobs.mesh_admission import check_mesh_fields
from backend.jobs.spec import JobSpec, StoredImage
from backend.models.base import GenerationRequest, ImagePixels
from backend.models.registry import ModelRegistry
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import TEXTURE_SIZES, SubmitRequest

SEED_RANGE = 2**32  # seeds drawn here, and accepted by the protocol, are 0 .. 2**32 - 1


@dataclass(frozen=True)
class Admission:
    """An admitted submit: the spec to store, the encoded images to keep, the decoded request."""

    spec: JobSpec
    encoded_images: tuple[bytes, ...]
    request: GenerationRequest
    encoded_mesh: bytes | None = None  # the GLB, kept as ``inputs/<spec.mesh_file>``


def admit(registry: ModelRegistry, message: SubmitRequest) -> Admission:
    """Turn ``message`` into a job, or raise a ProtocolError whose field is ``body.<path>``."""
    try:
        return _admit(registry, message)
    except ProtocolError as error:
        raise in_body(error) from error.__cause__


def in_body(error: ProtocolError) -> ProtocolError:
    """``error`` with its request-relative field prefixed by ``body.``."""
    info = error.info
    if not info.field or info.field.startswith("body."):
        return error
    return ProtocolError(
        ErrorCode(info.code), info.message, field=f"body.{info.field}", hint=info.hint
    )


def _admit(registry: ModelRegistry, message: SubmitRequest) -> Admission:
    adapter = registry.create(message.model)  # UNKNOWN_MODEL if not installed
    mesh_file = check_mesh_fields(message)
    check_options(message)
    if message.texture_size not in TEXTURE_SIZES:
        raise ProtocolError(
            ErrorCode.OUT_OF_RANGE,
            f"texture_size {message.texture_size} is not one of "
            f"{', '.join(map(str, TEXTURE_SIZES))}",
            field="texture_size",
        )
    decoded = [
        decode_image(image.data, f"images[{i}].data") for i, image in enumerate(message.images)
    ]
    request = adapter.check_inputs(
        GenerationRequest(
            task=message.task,
            prompt=message.prompt,
            images=tuple(
                ImagePixels(pixels=pixels, view=image.view)
                for (pixels, _), image in zip(decoded, message.images, strict=True)
            ),
            seed=message.seed if message.seed is not None else secrets.randbelow(SEED_RANGE),
            parameters=message.parameters,
            target_faces=message.target_faces,
            texture_size=message.texture_size,
        )
    )
    spec = JobSpec(
        model=message.model,
        task=message.task,
        prompt=message.prompt,
        seed=request.seed,
        parameters=dict(request.parameters),
        target_faces=message.target_faces,
        texture_size=message.texture_size,
        pbr=message.pbr,
        output_format=message.output_format,
        name=message.name or (message.mesh.name if message.mesh is not None else ""),
        images=tuple(
            StoredImage(file=f"{i}{suffix}", view=image.view)
            for i, ((_, suffix), image) in enumerate(zip(decoded, message.images, strict=True))
        ),
        mesh_file=mesh_file,
        source_job=message.source_job,
        keep_inner=message.keep_inner,
        lods=message.lods,
        quads=message.quads,
        keep_uvs=message.keep_uvs,
    )
    return Admission(
        spec=spec,
        encoded_images=tuple(image.data for image in message.images),
        request=request,
        encoded_mesh=message.mesh.data if message.mesh is not None else None,
    )
