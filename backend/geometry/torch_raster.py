"""raster.rasterize_faces on a torch device: which low-res face covers each atlas texel.

The bake needs the face under every texel of the atlas (its tangent frame encodes the normal
map). Here each triangle lists the texels of its bounding box, keeps those whose centre passes
raster.py's edge test (the same float64 arithmetic and slack, so the same texels), and a
scatter-min per texel keeps the lowest face index: raster.py's "first triangle wins". The
candidate texels are made in chunks of about TEXELS_PER_CHUNK, so memory stays bounded; the
only host sync is reading the boxes' sizes once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.geometry.raster import _EDGE_EPS

TEXELS_PER_CHUNK = 16_000_000  # candidate texels in flight at once (about 1 GB of float64)


def rasterize_faces(points: Any, faces: Any, height: int, width: int, device: str) -> Any:
    """points (n, 2) in [0, 1], faces (m, 3) (numpy or tensors) -> face_id (height, width)
    int32 tensor on ``device``, -1 where no face covers the texel centre."""
    import torch  # optional dependency: only the torch geometry path needs it

    dev = torch.device(device)
    pts = torch.as_tensor(np.asarray(points) if isinstance(points, np.ndarray) else points)
    tri = torch.as_tensor(np.asarray(faces) if isinstance(faces, np.ndarray) else faces)
    corner = pts.to(dev, torch.float64)[tri.to(dev, torch.int64)]  # (m, 3, 2)
    x = corner[..., 0] * width  # the same products raster.py forms
    y = corner[..., 1] * height
    col0 = torch.floor(x.min(dim=1).values - 0.5).clamp(min=0).long()
    col1 = torch.ceil(x.max(dim=1).values - 0.5).clamp(max=width - 1).long()
    row0 = torch.floor(y.min(dim=1).values - 0.5).clamp(min=0).long()
    row1 = torch.ceil(y.max(dim=1).values - 0.5).clamp(max=height - 1).long()
    box_w = (col1 - col0 + 1).clamp(min=0)
    count = box_w * (row1 - row0 + 1).clamp(min=0)
    best = torch.full((height * width,), len(tri), dtype=torch.int64, device=dev)
    # The one host sync: the boxes' sizes, to cut the faces into chunks of bounded memory.
    ends = np.cumsum(count.cpu().numpy())
    first = 0
    while first < len(ends):
        done = ends[first - 1] if first else 0
        last = max(int(np.searchsorted(ends, done + TEXELS_PER_CHUNK, side="right")), first + 1)
        _draw(torch, first, last, int(ends[last - 1] - done), x, y, col0, row0, box_w, count,
              best, width)  # fmt: skip
        first = last
    face_id = torch.where(best < len(tri), best, -1).to(torch.int32)
    return face_id.reshape(height, width)


def _draw(torch: Any, first: int, last: int, candidates: int, x: Any, y: Any, col0: Any,
          row0: Any, box_w: Any, count: Any, best: Any, width: int) -> None:  # fmt: skip
    """Scatter-min the index of each face first..last-1 into the texels its edge test keeps."""
    part = torch.arange(first, last, device=best.device)
    if candidates == 0:
        return
    owner = part.repeat_interleave(count[first:last], output_size=candidates)
    start = torch.cumsum(count[first:last], 0) - count[first:last]
    local = torch.arange(len(owner), device=best.device) - start[owner - first]
    row = row0[owner] + local // box_w[owner]
    col = col0[owner] + local % box_w[owner]
    px, py = col.double() + 0.5, row.double() + 0.5
    ax, bx, cx = x[owner].unbind(1)
    ay, by, cy = y[owner].unbind(1)
    det = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
    inv = 1.0 / torch.where(det == 0.0, torch.ones_like(det), det)
    w1 = ((px - ax) * (cy - ay) - (cx - ax) * (py - ay)) * inv
    w2 = ((bx - ax) * (py - ay) - (px - ax) * (by - ay)) * inv
    w0 = 1.0 - w1 - w2
    inside = (det != 0.0) & (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
    texel = row * width + col
    # Outside texels scatter the sentinel (no face), so no boolean compaction (a sync) is needed.
    face = torch.where(inside, owner, best.new_full((), len(x)))
    best.scatter_reduce_(0, texel, face, reduce="amin")
