"""Quad remesh: an all-quad surface near the face budget, through Instant Meshes.

The library: ``pynanoinstantmeshes`` (BSD-3, a nanobind binding of Wenzel Jakob's Instant
Meshes, by Mark Boss; the remesher Stability AI ships with SF3D). It is the one quad remesher on
PyPI with prebuilt wheels for Linux x86-64, Windows x64 and macOS arm64 (abi3 from Python 3.12,
so new Pythons need no new wheel): nothing to compile. The others were judged and left:
``pyinstantmeshes`` has no Linux wheel; ``pyQuadriFlow`` is pre-alpha, ships no macOS library
and copies every vertex through Python lists. Not covered: Intel macOS and Linux arm64 (no
wheel; pyproject installs it only where one exists, and ``--quads`` there is a clear error).

Instant Meshes with ``posy=4`` extracts a quad-dominant mesh and subdivides it once into pure
quads, about 4 per target vertex (measured: 4.02-4.08), so the vertex target is the triangle
budget / ``TRIANGLES_PER_TARGET_VERTEX``. It runs in a child process: it prints its progress
on the C stdout, and it can take the process down on input it cannot handle (an empty mesh
ends in SIGFPE); a child keeps both away from the backend, and any failure becomes a coded
GEOMETRY_FAILED error with a hint, never a silent fallback to triangles.

glTF has no quads, so each quad is written as two triangles in a row (faces 2i and 2i+1,
sharing the quad's shorter diagonal); :func:`pair_faces` builds them and the export records
the pair count in the primitive's extras, so an importer can join them back exactly.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.geometry import clean, decimate, tolerances
from shared_protocol.errors import ErrorCode, ProtocolError

LIBRARY = "pynanoinstantmeshes"
TRIANGLES_PER_TARGET_VERTEX = 8.1  # 4.05 quads per target vertex, 2 triangles each
TIMEOUT_S = 600.0
INPUT_RATIO = 4  # the remesher reads the mesh decimated to this many times the target
FACE_TOLERANCE = 0.1  # a remesh further than this from the face target is reported
CHILD_MEMORY_BYTES = 8 * 2**30  # address space the remesher's child may take (POSIX)
FAILED_HINT = (
    "the quad remesher needs a clean manifold surface with some area: try without quads, or "
    "repair the mesh first"
)
# The child: numpy and the library only (no backend import), arrays through .npz files.
_CHILD = """
import sys, numpy as np, pynanoinstantmeshes as nim
data = np.load(sys.argv[1])
vertices, quads = nim.remesh(
    data["vertices"], data["faces"], int(data["vertex_count"]), rosy=4, posy=4,
    deterministic=True,
)
np.savez(sys.argv[2], vertices=np.asarray(vertices), quads=np.asarray(quads))
"""


@dataclass
class QuadMesh:
    """vertices (n, 3) float32, quads (q, 4) int64 (counter-clockwise seen from outside)."""

    vertices: np.ndarray
    quads: np.ndarray


def available() -> bool:
    """True when the remesher library is installed here."""
    return importlib.util.find_spec(LIBRARY) is not None


def check_available() -> None:
    """Raise ProtocolError (field ``quads``) when the library is missing."""
    if not available():
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            f"quad remeshing needs {LIBRARY}, which is not installed here",
            field="quads",
            hint=f"pip install {LIBRARY} (wheels for Linux x86-64, Windows x64, macOS arm64)",
        )


def remesh(vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> QuadMesh:
    """An all-quad remesh of vertices (n, 3), faces (m, 3) with about ``target_faces`` / 2
    quads (``target_faces`` triangles once paired)."""
    check_available()
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    # Inputs Instant Meshes is known to die on (SIGFPE on an empty mesh, a runaway on a flat
    # one) are refused here, before a child is started.
    if len(faces) == 0 or not np.isfinite(vertices).all():
        raise _failed("the mesh is empty or has non-finite positions")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise _failed("a face points past the vertices")
    diagonal = clean.bbox_diagonal(vertices)
    if clean.face_areas(vertices, faces).sum() <= tolerances.ZERO_AREA * diagonal**2 * len(faces):
        raise _failed("the mesh has no area")
    vertex_count = max(4, round(target_faces / TRIANGLES_PER_TARGET_VERTEX))
    with tempfile.TemporaryDirectory(prefix="dreamcad-quads-") as folder:
        source, result = Path(folder) / "in.npz", Path(folder) / "out.npz"
        np.savez(
            source, vertices=vertices, faces=np.ascontiguousarray(faces, dtype=np.uint32),
            vertex_count=np.int64(vertex_count),
        )  # fmt: skip
        try:
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(source), str(result)],
                capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
                preexec_fn=_limit_memory if os.name == "posix" else None,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            raise _failed(f"it ran past {TIMEOUT_S:.0f} s") from error
        if done.returncode != 0 or not result.is_file():
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise _failed(last)
        with np.load(result) as data:
            out_vertices, quads = data["vertices"], data["quads"].astype(np.int64)
    return _checked(out_vertices, quads)


def remesh_to_pairs(
    vertices: np.ndarray, faces: np.ndarray, target_faces: int
) -> tuple[decimate.DecimateResult, int]:
    """The quad remesh of vertices (n, 3), faces (m, 3) as triangles (quads as face pairs,
    :func:`pair_faces`) and the quad count. Instant Meshes' time grows with its input, so a
    dense mesh is first decimated to ``INPUT_RATIO`` x the target, still far finer than the
    quads it will carry."""
    if len(faces) > INPUT_RATIO * target_faces:
        coarse = decimate.decimate(vertices, faces, INPUT_RATIO * target_faces)
        vertices, faces = coarse.vertices, coarse.faces
    remeshed = remesh(vertices, faces, target_faces)
    paired = pair_faces(remeshed.vertices, remeshed.quads)
    return decimate.DecimateResult(remeshed.vertices, paired, {}), len(remeshed.quads)


def pair_faces(vertices: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """(2q, 3) triangles: quad i becomes faces 2i and 2i+1, split along its shorter diagonal
    (a c for a b c d, else b d), so the pairs share exactly that edge and keep the winding."""
    corners = vertices[quads].astype(np.float64)
    ac = np.linalg.norm(corners[:, 2] - corners[:, 0], axis=1)
    bd = np.linalg.norm(corners[:, 3] - corners[:, 1], axis=1)
    a, b, c, d = quads.T
    along_ac = ac <= bd
    first = np.where(along_ac[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
    second = np.where(along_ac[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
    return np.stack([first, second], axis=1).reshape(-1, 3)


def pair_groups(quad_count: int) -> np.ndarray:
    """(2q,) the quad each paired triangle belongs to (for the unwrap to keep pairs whole)."""
    return np.repeat(np.arange(quad_count, dtype=np.int64), 2)


def _limit_memory() -> None:
    """In the child (POSIX): a runaway remesh fails on allocation instead of taking the
    machine's memory."""
    import resource

    limit = CHILD_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _checked(vertices: np.ndarray, quads: np.ndarray) -> QuadMesh:
    """The remesher's answer, or GEOMETRY_FAILED when it is empty or broken."""
    if len(quads) == 0 or quads.ndim != 2 or quads.shape[1] != 4:
        raise _failed("it produced no quads")
    if quads.min() < 0 or quads.max() >= len(vertices) or not np.isfinite(vertices).all():
        raise _failed("it produced an invalid mesh")
    ordered = np.sort(quads, axis=1)
    if np.any(ordered[:, 1:] == ordered[:, :-1]):
        raise _failed("it produced degenerate quads")
    return QuadMesh(np.asarray(vertices, dtype=np.float32), quads)


def _failed(reason: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.GEOMETRY_FAILED,
        f"the quad remesher ({LIBRARY}) could not remesh this mesh: {reason}",
        field="quads",
        hint=FAILED_HINT,
    )
