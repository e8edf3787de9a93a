"""A triangle rasteriser in plain torch (CPU for tests, CUDA in use): no compiled extension.

Upstream's paint stage needs ``custom_rasterizer``, a CUDA extension users must build (its top
install failure). This one enumerates, for each triangle, the pixel centres inside its bounding
box (in chunks of triangles, so memory stays bounded), keeps those inside the triangle, and
resolves visibility with one ``scatter_reduce(amin)`` over a packed (depth, face) key per pixel.
It serves both the camera renders (normal, position and depth maps of the paint views) and the
UV-space rasterisation that finds each texel's surface point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# Candidate (triangle, pixel) pairs evaluated at once; bounds peak memory (~40 B per pair).
PAIRS_PER_CHUNK = 4_000_000
FACE_BITS = 32


@dataclass
class Raster:
    """face (h, w) int64, -1 where empty; bary (h, w, 3) float32; depth (h, w) float32 (inf)."""

    face: Tensor
    bary: Tensor
    depth: Tensor

    def interpolate(self, attributes: Tensor, faces: Tensor) -> Tensor:
        """Per-vertex attributes (n, c) -> (h, w, c) at covered pixels, 0 elsewhere."""
        covered = self.face >= 0
        out = attributes.new_zeros((*self.face.shape, attributes.shape[1]))
        corners = attributes[faces[self.face[covered]]]  # (k, 3, c)
        out[covered] = (self.bary[covered][..., None] * corners).sum(1)
        return out


def _barycentric(p: Tensor, a: Tensor, b: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Barycentric weights (k, 3) of 2-D points p for triangles abc (k, 2 each), and area."""
    v0, v1, v2 = b - a, c - a, p - a
    area = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    safe = torch.where(area.abs() > 1e-20, area, torch.ones_like(area))
    w1 = (v2[:, 0] * v1[:, 1] - v2[:, 1] * v1[:, 0]) / safe
    w2 = (v0[:, 0] * v2[:, 1] - v0[:, 1] * v2[:, 0]) / safe
    return torch.stack([1 - w1 - w2, w1, w2], dim=1), area


def rasterize(screen: Tensor, faces: Tensor, height: int, width: int) -> Raster:
    """Rasterise triangles given in pixel space.

    screen : (n, 3) float, x (column) and y (row) in pixels (pixel centres at +0.5), z depth
    faces : (m, 3) int64
    Both windings are drawn (no culling); the nearest (smallest z) triangle wins.
    """
    device = screen.device
    faces = faces.to(device=device, dtype=torch.int64)
    corners = screen[faces]  # (m, 3, 3)
    low = torch.floor(corners[..., :2].amin(1) - 0.5).clamp(min=0)
    high = torch.ceil(corners[..., :2].amax(1) - 0.5)
    high[:, 0] = high[:, 0].clamp(max=width - 1)
    high[:, 1] = high[:, 1].clamp(max=height - 1)
    span = (high - low + 1).clamp(min=0).long()  # (m, 2) columns, rows
    counts = span[:, 0] * span[:, 1]
    keys = torch.full((height * width,), torch.iinfo(torch.int64).max, device=device)
    ends = torch.cumsum(counts, 0)
    start = 0
    while start < len(faces):
        # as many whole triangles as fit in one chunk (at least one)
        limit = (ends[start - 1] if start else 0) + PAIRS_PER_CHUNK
        stop = max(int(torch.searchsorted(ends, limit, right=True)), start + 1)
        _scatter_chunk(corners, low, span, counts, start, min(stop, len(faces)), keys, width)
        start = stop
    face = torch.where(keys == torch.iinfo(torch.int64).max, -1, keys & (2**FACE_BITS - 1))
    face = face.view(height, width)
    return _resolve(screen, faces, face)


def _pairs(low: Tensor, span: Tensor, counts: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel (x, y) centres and triangle ids of every bounding-box pixel of triangles ``ids``."""
    tri = torch.repeat_interleave(ids, counts[ids])
    first = torch.cumsum(counts[ids], 0) - counts[ids]
    local = torch.arange(len(tri), device=ids.device) - torch.repeat_interleave(first, counts[ids])
    cols = span[tri, 0]
    x = low[tri, 0] + (local % cols)
    y = low[tri, 1] + torch.div(local, cols, rounding_mode="floor")
    return torch.stack([x, y], 1), tri


def _scatter_chunk(corners, low, span, counts, start, stop, keys, width) -> None:
    ids = torch.arange(start, stop, device=corners.device)
    pixel, tri = _pairs(low, span, counts, ids)
    if len(tri) == 0:
        return
    centre = pixel + 0.5
    tri_corners = corners[tri]
    bary, area = _barycentric(
        centre, tri_corners[:, 0, :2], tri_corners[:, 1, :2], tri_corners[:, 2, :2]
    )
    inside = (bary >= -1e-6).all(1) & (area.abs() > 1e-20)
    depth = (bary * tri_corners[:, :, 2]).sum(1)
    inside &= depth > 0
    if not inside.any():
        return
    # Positive float32 depths order like their bit patterns: pack depth above the face index.
    depth_bits = depth[inside].float().view(torch.int32).to(torch.int64)
    packed = (depth_bits << FACE_BITS) | tri[inside]
    index = pixel[inside, 1].long() * width + pixel[inside, 0].long()
    keys.scatter_reduce_(0, index, packed, reduce="amin")


def _resolve(screen: Tensor, faces: Tensor, face: Tensor) -> Raster:
    height, width = face.shape
    covered = face >= 0
    rows, cols = torch.nonzero(covered, as_tuple=True)
    hit = face[rows, cols]
    tri = screen[faces[hit]]
    centre = torch.stack([cols, rows], 1).to(screen.dtype) + 0.5
    bary, _ = _barycentric(centre, tri[:, 0, :2], tri[:, 1, :2], tri[:, 2, :2])
    bary = bary.clamp(min=0)
    bary = bary / bary.sum(1, keepdim=True)
    bary_image = torch.zeros((height, width, 3), dtype=torch.float32, device=screen.device)
    bary_image[rows, cols] = bary.float()
    depth = torch.full((height, width), float("inf"), device=screen.device)
    depth[rows, cols] = (bary * tri[:, :, 2]).sum(1).float()
    return Raster(face, bary_image, depth)
