"""Stage 2, decimate: reduce a clean mesh to a target face count with quadric error.

The work is qem.py's greedy edge collapse. The result keeps the input's topology class: a
watertight single body stays one watertight body with no zero-area faces and no non-manifold
edges, and open borders stay where they are. With per-vertex attributes (kept UVs) every
survivor sits on one of its original vertices, so the attributes stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.geometry import qem, tolerances
from shared_protocol.errors import ErrorCode, ProtocolError

MIN_TARGET_FACES = 4
MAX_TARGET_FACES = 5_000_000


@dataclass
class DecimateResult:
    """vertices (n, 3) float32, faces (m, 3) int64, attributes name -> (n, k); owner (N,) the
    output vertex each input vertex merged into (None when nothing was collapsed)."""

    vertices: np.ndarray
    faces: np.ndarray
    attributes: dict[str, np.ndarray]
    owner: np.ndarray | None = None
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
    device: str | None = None,
) -> DecimateResult:
    """Collapse edges until about ``target_faces`` remain (within 2 %).

    vertices (n, 3), faces (m, 3) int, attributes name -> (n, k). Returns a new mesh; when the
    input already has no more faces than the target it is returned unchanged. ``device`` (a
    torch device name) runs the parallel torch decimator there (torch_qem.py) instead of the
    compiled greedy one.
    """
    check_target(target_faces)
    attributes = dict(attributes or {})
    if len(faces) <= target_faces:
        return DecimateResult(vertices, faces, attributes, None, {"collapses": 0.0})
    endpoint = bool(attributes)  # per-vertex data (kept UVs) stays exact at an endpoint
    if device is None:
        new_vertices, new_faces, origin, owner = qem.collapse(
            vertices, faces, target_faces, endpoint
        )
    else:
        from backend.geometry import torch_qem  # torch only on this path

        new_vertices, new_faces, origin, owner = torch_qem.collapse(
            vertices, faces, target_faces, endpoint, device
        )
    return DecimateResult(
        new_vertices,
        new_faces,
        {name: values[origin] for name, values in attributes.items()},
        owner,
        {"collapses": float(len(vertices) - len(new_vertices))},
    )


def within_tolerance(faces: int, target: int) -> bool:
    """True when ``faces`` is within the decimation face tolerance of ``target``."""
    return abs(faces - target) <= tolerances.DECIMATE_FACE_TOLERANCE * target
