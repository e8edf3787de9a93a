"""Production figures of a finished asset, read back from its GLB bytes.

Beside the manifest's own figures (watertight, pieces, non-manifold edges, UV utilization),
two that only the result shows: how much hidden surface is still in it (faces of inner shells
no outside view sees) and how even the texel density is (texels per unit length, face by face:
the area-weighted 90th over 10th percentile, 1.0 when every face gets the same resolution).
"""

from __future__ import annotations

import numpy as np

from backend.geometry import clean, inner_shells, mesh_input, quality
from backend.geometry.tolerances import WELD_DISTANCE

# The manifest's figures a bench run keeps, and which way is better ("up" or "down").
MANIFEST_FIGURES = {
    "watertight": "up",
    "pieces": "down",
    "non_manifold_edges": "down",
    "uv_utilization": "up",
    "flipped_faces": "down",
    "inner_faces_removed": None,  # what the pipeline found: neither better nor worse
}
RESULT_FIGURES = {"inner_shell_faces_left": "down", "texel_density_spread": "down"}
BETTER = {**{k: v for k, v in MANIFEST_FIGURES.items() if v}, **RESULT_FIGURES}


def texel_density_spread(vertices: np.ndarray, faces: np.ndarray, uvs: np.ndarray) -> float:
    """Area-weighted p90 / p10 of sqrt(UV area / 3D area) over faces (1.0: perfectly even)."""
    area = clean.face_areas(vertices.astype(np.float64), faces)
    corner = uvs[faces].astype(np.float64)
    e1, e2 = corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0]
    uv_area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    keep = area > 0
    if not keep.any():
        return float("nan")
    density = np.sqrt(uv_area[keep] / area[keep])
    order = np.argsort(density)
    cumulative = np.cumsum(area[keep][order]) / area[keep].sum()
    p10 = density[order][np.searchsorted(cumulative, 0.10)]
    p90 = density[order][min(np.searchsorted(cumulative, 0.90), len(order) - 1)]
    return float(p90 / p10) if p10 > 0 else float("inf")


def asset_figures(glb: bytes) -> dict[str, float]:
    """Figures of a GLB asset: inner-shell faces left, texel-density spread, and the topology
    of its positions (UV seams welded, so they do not count as holes)."""
    raw = mesh_input.read_glb(glb, "asset")
    vertices, faces = raw.vertices.astype(np.float64), raw.faces
    figures: dict[str, float] = {}
    if raw.uvs is not None:
        figures["texel_density_spread"] = round(texel_density_spread(vertices, faces, raw.uvs), 4)
    distance = WELD_DISTANCE * clean.bbox_diagonal(vertices)
    kept, welded = clean.weld_vertices(vertices, faces, distance)
    figures["inner_shell_faces_left"] = int(
        inner_shells.find_inner_shells(vertices[kept], welded).hidden_faces
    )
    topology = quality.topology(vertices[kept], welded)
    figures["asset_watertight"] = bool(topology["watertight"])
    figures["asset_pieces"] = int(topology["pieces"])
    return figures


def worse(name: str, old: float, new: float) -> bool:
    """Whether ``new`` is worse than ``old`` for figure ``name`` (False for unranked ones)."""
    direction = BETTER.get(name)
    if direction is None or old is None or new is None:
        return False
    if isinstance(old, bool) or isinstance(new, bool):
        return direction == "up" and bool(old) and not bool(new)
    tolerance = 1e-3 * max(abs(float(old)), 1e-9)  # rounding in the JSON is not a regression
    if direction == "up":
        return float(new) < float(old) - tolerance
    return float(new) > float(old) + tolerance
