"""tangents.vertex_normals on a torch device: angle-weighted unit vertex normals.

The bake splats every source vertex's normal into the normal map. On a GPU job the source is
the model's raw mesh (5M faces for TRELLIS), and the numba loop over it took ~0.3 s of one CPU
thread while the device idled; here the same arithmetic runs data-parallel, every corner's
angle-weighted face normal added to its vertex in the loop's order (``torch_sums``: the same
bits on every run; only the device's own arithmetic may differ from the loop's in the last bit).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.geometry import torch_sums

_SLICE = 1 << 22  # corners gathered at a time: a 5M-face mesh in four slices


def vertex_normals(vertices: np.ndarray, faces: np.ndarray, device: str) -> Any:
    """vertices (n, 3), faces (m, 3) -> (n, 3) float32 unit normals, a tensor on ``device``;
    a vertex whose faces are all degenerate gets (0, 0, 0), as in tangents.vertex_normals."""
    import torch  # optional dependency: only the torch geometry path needs it

    dev = torch.device(device)
    pos = torch.as_tensor(np.ascontiguousarray(vertices), device=dev).double()
    tri = torch.as_tensor(np.ascontiguousarray(faces), device=dev).long()
    if len(tri) == 0:
        return torch.zeros((len(pos), 3), dtype=torch.float32, device=dev)
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
    weighted = (angle[:, :, None] * unit[:, None, :]).reshape(-1, 3)
    summed = torch_sums.index_sum(tri.reshape(-1), weighted, len(pos), slice_size=_SLICE)
    norm = torch.linalg.vector_norm(summed, dim=1, keepdim=True).clamp(min=1e-30)
    return (summed / norm).float()
