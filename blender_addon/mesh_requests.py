"""The typed requests of the "Your mesh" jobs: texture, optimize, and optimize again.

Built from the panel's settings and an exported object (mesh_export.py) and checked here, before
anything is sent, with the same codes the backend would answer: no model that paints meshes, a
backend without the built-in ``mesh-optimize`` (older than protocol 3), a GLB over the frame
limit, a texture job without a prompt or image.
"""

from __future__ import annotations

import json
from typing import Any

from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import (
    MAX_FACES,
    MIN_FACES,
    OPTIMIZE_MODEL,
    ImageInput,
    MeshInput,
    ModelInfo,
    SubmitRequest,
)

from .mesh_export import ExportedMesh

MAX_MESH_NAME_CHARS = 200
BRIDGE_MODEL = "image-bridge"  # the text-to-image bridge: prompt -> picture -> a painter


def painters(models: tuple[ModelInfo, ...]) -> list[ModelInfo]:
    """The models that paint a given mesh from an image (the bridge only hands over to one)."""
    return [m for m in models if "texture" in m.tasks and m.id != BRIDGE_MODEL]


def texture_model(models: tuple[ModelInfo, ...], preferred: str, by_prompt: bool,
                  painter_parameters: dict[str, Any] | None = None, *,
                  chosen_only: bool = False) -> tuple[ModelInfo, dict[str, Any]]:
    """(model to submit to, its parameters) for a texture job.

    The painter is ``preferred`` if it paints meshes, else (unless ``chosen_only``: the artist
    picked that one) the first available one that does. ``painter_parameters`` are the
    painter's own (the panel's, when the painter is the panel's model). Painters paint from an
    image, so a prompt goes to the text-to-image bridge with the painter as its
    ``image_model`` and the painter's parameters as its ``image_model_parameters``.
    """
    candidates = painters(models)
    chosen = next((m for m in candidates if m.id == preferred and m.available), None)
    if chosen is None and chosen_only:
        raise ProtocolError(
            ErrorCode.MODEL_UNAVAILABLE, f"the painter {preferred!r} is not available on this "
            "backend", field="painter", hint="Pick another painter, or Automatic.",
        )
    chosen = chosen or next((m for m in candidates if m.available), None)
    if chosen is None:
        reason = (f"{candidates[0].name}: {candidates[0].unavailable_reason}" if candidates
                  else "none of its models lists the texture task")
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_TASK, f"this backend cannot paint meshes ({reason})",
            field="task",
            hint="Hunyuan3D-2 paints meshes once its paint weights are there: "
            "`dreamcad-backend download hunyuan3d-2mini --with paint`.",
        )
    parameters = dict(painter_parameters or {})
    if not by_prompt:
        return chosen, parameters
    bridge = next((m for m in models if m.id == BRIDGE_MODEL and "texture" in m.tasks), None)
    if bridge is None or not bridge.available:
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_TASK, "this backend cannot turn a prompt into a texture "
            f"({BRIDGE_MODEL} " + ("is missing)" if bridge is None
                                   else f"cannot run: {bridge.unavailable_reason})"),
            field="task", hint="Texture from an image instead, or install the bridge's weights.",
        )
    bridged: dict[str, Any] = {"image_model": chosen.id}
    if parameters:
        bridged["image_model_parameters"] = json.dumps(parameters, sort_keys=True)
    return bridge, bridged


def optimize_model(models: tuple[ModelInfo, ...]) -> ModelInfo:
    model = next((m for m in models if m.id == OPTIMIZE_MODEL), None)
    if model is None:
        raise ProtocolError(
            ErrorCode.UNKNOWN_MODEL, f"this backend has no {OPTIMIZE_MODEL} model",
            field="model", hint="Update the backend: mesh jobs need protocol 3 or later.",
        )
    return model


def mesh_input(exported: ExportedMesh, max_frame_bytes: int | None) -> MeshInput:
    """The GLB as the request's mesh, refused here when one frame cannot carry it."""
    if max_frame_bytes is not None and len(exported.glb) > max_frame_bytes:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"{exported.object_name} exports to {len(exported.glb) / 2**20:.1f} MiB; the backend "
            f"takes {max_frame_bytes / 2**20:.1f} MiB per frame",
            field="mesh",
            hint="Decimate it or use smaller textures first, or raise the backend's "
            "--max-frame-mb.",
        )
    return MeshInput(data=exported.glb, name=exported.object_name[:MAX_MESH_NAME_CHARS])


def texture_request(model: ModelInfo, exported: ExportedMesh, mesh: MeshInput, *, prompt: str,
                    images: tuple[ImageInput, ...], texture_size: int, keep_uvs: bool,
                    parameters: dict[str, Any] | None = None,
                    max_prompt_chars: int | None = None) -> SubmitRequest:
    """Paint ``exported``; its geometry is kept (the face budget is its own face count)."""
    prompt = prompt.strip()
    if not prompt and not images:
        raise ProtocolError(ErrorCode.MISSING_FIELD, "texturing needs a prompt or an image",
                            field="prompt",
                            hint="Type what the surface should look like, or pick an image.")
    if max_prompt_chars is not None and len(prompt) > max_prompt_chars:
        raise ProtocolError(ErrorCode.PROMPT_TOO_LONG,
                            f"the prompt has {len(prompt)} characters; the backend takes "
                            f"{max_prompt_chars}", field="prompt")
    return SubmitRequest(
        model=model.id, task="texture", prompt="" if images else prompt, images=images,
        mesh=mesh, target_faces=min(MAX_FACES, max(MIN_FACES, exported.faces)),
        texture_size=texture_size, keep_uvs=keep_uvs,
        keep_inner=True,  # texturing changes no geometry: hidden parts stay too
        parameters=dict(parameters or {}),
        name=exported.object_name[:60],
    )


def optimize_request(settings, *, mesh: MeshInput | None = None, source_job: str | None = None,
                     name: str) -> SubmitRequest:
    """Make a mesh (or a finished job's raw output) game-ready with the "Your mesh" settings."""
    return SubmitRequest(
        model=OPTIMIZE_MODEL, task="optimize", mesh=mesh, source_job=source_job,
        target_faces=settings.target_faces, texture_size=int(settings.texture_size),
        lods=settings.lods, quads=settings.quads, keep_inner=settings.keep_inner,
        name=name[:60],
    )
