"""The submit checks that protocol 3's mesh input adds: which tasks take a mesh, and is it one.

Called by admission.py for every submit, so the server and the CLI refuse the same things.
Fields are request-relative (``mesh.data``, ``source_job``); admission prefixes ``body.``. The
mesh's triangles are counted from the GLB's JSON only (glb_header.py): the geometry is read by
the worker, off the server thread. Whether a ``source_job`` exists and may be used is a matter
of the job store and its owner: sources.py, called by the server's submit handler.
"""

from __future__ import annotations

from backend.geometry.glb_header import count_triangles
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import MESH_MEDIA_TYPE, MESH_TASKS, SubmitRequest

MESH_FILE = "mesh.glb"


def check_mesh_fields(message: SubmitRequest) -> str | None:
    """Refuse a mesh where none is taken, or none where one is; the stored file name or None."""
    task = message.task
    if task not in MESH_TASKS:
        for name in ("mesh", "source_job"):
            if getattr(message, name) is not None:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD,
                    f"task {task!r} takes no {name}: only texture and optimize do",
                    field=name,
                    hint="drop the field, or use task 'texture' or 'optimize'",
                )
        return None
    if message.source_job is not None:
        if task != "optimize":
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "only task 'optimize' takes a source_job",
                field="source_job", hint="send the mesh itself for texture",
            )  # fmt: skip
        if message.mesh is not None:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "send a mesh or a source_job, not both",
                field="source_job",
            )  # fmt: skip
    elif message.mesh is None:
        alternative = " (or a source_job: a finished job to optimize again)"
        raise ProtocolError(
            ErrorCode.MISSING_FIELD,
            f"task {task!r} needs a mesh" + (alternative if task == "optimize" else ""),
            field="mesh",
        )
    if task == "texture" and not message.images and not message.prompt.strip():
        raise ProtocolError(
            ErrorCode.MISSING_FIELD,
            "task 'texture' needs an image of the look, or a prompt to make one",
            field="images",
        )
    if message.mesh is None:
        return None
    if message.mesh.media_type != MESH_MEDIA_TYPE:
        raise ProtocolError(
            ErrorCode.INVALID_MESH,
            f"mesh media_type {message.mesh.media_type!r}: only {MESH_MEDIA_TYPE!r} (GLB) is read",
            field="mesh.media_type",
        )
    count_triangles(message.mesh.data, "mesh.data")  # invalid_mesh / mesh_too_large
    return MESH_FILE
