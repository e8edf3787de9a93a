"""tangents.vertex_normals on a torch device: angle-weighted unit vertex normals.

The bake splats every source vertex's normal into the normal map. On a GPU job the source is
the model's raw mesh (5M faces for TRELLIS), and the numba loop over it took ~0.3 s of one CPU
thread while the device idled; here the same arithmetic runs data-parallel, every corner's
angle-weighted face normal added to its vertex with ``index_add_`` (so the sums' order, and the
last bits, may differ from the sequential loop's).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, device: str) -> Any:
    """vertices (n, 3), faces (m, 3) -> (n, 3) float32 unit normals, a tensor on ``device``;
    a vertex whose faces are all degenerate gets (0, 0, 0), as in tangents.vertex_normals."""
    import torch  # optional dependency: only the torch geometry path needs it

    dev = torch.device(device)
    pos = torch.as_tensor(np.ascontiguousarray(vertices), device=dev).double()
    tri = torch.as_tensor(np.ascontiguousarray(faces), device=dev).long()
    summed = torch.zeros((len(pos), 3), dtype=torch.float64, device=dev)
    if len(tri) == 0:
        return summed.float()
    corner = pos[tri]  # (m, 3, 3)
    normal = torch.linalg.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0])
    length = torch.linalg.vector_norm(normal, dim=1, keepdim=True)
    unit = normal / torch.where(length == 0, torch.ones_like(length), length)
    # Corner k's angle, between its edges to corners k+1 and k+2 (the loop's p, q, r).
    # Rolls, not list indices: a list index is uploaded, and an upload waits for the GPU.
    u = torch.roll(corner, -1, dims=1) - corner  # corners 1, 2, 0
    w = torch.roll(corner, 1, dims=1) - corner  # corners 2, 0, 1
    lu = torch.linalg.vector_norm(u, dim=2)
    lw = torch.linalg.vector_norm(w, dim=2)
    usable = (lu != 0) & (lw != 0) & (length != 0)
    cos = (u * w).sum(dim=2) / torch.where(usable, lu * lw, torch.ones_like(lu))
    angle = torch.where(usable, torch.arccos(cos.clamp(-1.0, 1.0)), torch.zeros_like(cos))
    summed.index_add_(0, tri.reshape(-1), (angle[:, :, None] * unit[:, None, :]).reshape(-1, 3))
    norm = torch.linalg.vector_norm(summed, dim=1, keepdim=True).clamp(min=1e-30)
    return (summed / norm).float()
