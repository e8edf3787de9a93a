"""Stage 2, decimate: reduce a clean mesh to a target face count with quadric error.

The result keeps the input's topology class: a watertight single body stays one watertight body
with no zero-area faces and no non-manifold edges. Per-vertex attributes follow the vertex each
survivor stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.geometry import clean, tolerances
from shared_protocol.errors import ErrorCode, ProtocolError

MIN_TARGET_FACES = 4
MAX_TARGET_FACES = 5_000_000


@dataclass
class DecimateResult:
    """vertices (n, 3) float32, faces (m, 3) int64, attributes name -> (n, k)."""

    vertices: np.ndarray
    faces: np.ndarray
    attributes: dict[str, np.ndarray]
    report: dict[str, float] = field(default_factory=dict)


def check_target(target_faces: int) -> None:
    """Reject a face target outside what the decimator supports."""
    if not MIN_TARGET_FACES <= target_faces <= MAX_TARGET_FACES:
        raise ProtocolError(
            ErrorCode.OUT_OF_RANGE,
            f"target face count {target_faces} is outside [{MIN_TARGET_FACES}, {MAX_TARGET_FACES}]",
            field="target_faces",
        )


def decimate(
    vertices: np.ndarray,
    faces: np.ndarray,
    target_faces: int,
    attributes: dict[str, np.ndarray] | None = None,
) -> DecimateResult:
    """Collapse edges until about ``target_faces`` remain (within 2 %).

    vertices (n, 3), faces (m, 3) int, attributes name -> (n, k). Returns a new mesh; when the
    input already has no more faces than the target it is returned unchanged.
    """
    check_target(target_faces)
    attributes = dict(attributes or {})
    if len(faces) <= target_faces:
        return DecimateResult(vertices, faces, attributes, {"collapses": 0})
    import fast_simplification

    new_vertices, new_faces, collapses = fast_simplification.simplify(
        np.asarray(vertices, dtype=np.float32),
        np.asarray(faces, dtype=np.int32),
        target_count=target_faces,
        agg=5,
        return_collapses=True,
    )
    _, _, mapping = fast_simplification.replay_simplification(
        np.asarray(vertices, dtype=np.float32), np.asarray(faces, dtype=np.int32), collapses
    )
    representative = np.zeros(len(new_vertices), dtype=np.int64)
    representative[mapping] = np.arange(len(vertices))
    attributes = {name: values[representative] for name, values in attributes.items()}
    result = clean.clean_mesh(new_vertices, new_faces, attributes)
    return DecimateResult(
        result.vertices,
        result.faces,
        result.attributes,
        {"collapses": float(len(collapses)), **result.report},
    )


def within_tolerance(faces: int, target: int) -> bool:
    """True when ``faces`` is within the decimation face tolerance of ``target``."""
    return abs(faces - target) <= tolerances.DECIMATE_FACE_TOLERANCE * target
