"""The optional torch path of the bake: the splat of transfer.py and the field queries on a GPU.

Where the user has a GPU, ``PipelineOptions(device="cuda")`` sends the two parts of the bake that
scale with the texel count here. :func:`splat` computes exactly what ``transfer.splat`` does
(every high-resolution triangle drawn through the affine UV map of its low-resolution face,
once per chart its corners touch, the copy nearest the low-resolution surface winning a
texel) but data-parallel: every (triangle, chart copy) lists the texels of its bounding box,
keeps those inside, and a scatter-min per texel picks the winner, ties going to the earlier
triangle as in the sequential kernel. :func:`query_field` calls a model's field in large
batches, on the device, through its ``torch_field`` (tensor in, tensor out) when it has one.
torch is imported only here, and only when this path is asked for.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from backend.geometry import transfer
from backend.geometry.raw_asset import PointField
from backend.geometry.torch_gather import rows

TEXELS_PER_CHUNK = 8_000_000  # candidate texels in flight at once (about 0.5 GB at float64)
FIELD_BATCH = 2_097_152  # points per call of a field's torch_field on the device
_EDGE_EPS = 1e-6  # the same barycentric slack as transfer._splat


def _torch() -> Any:
    import torch  # optional dependency: only the GPU path needs it

    return torch


def splat(
    hi_vertices: np.ndarray,
    hi_faces: np.ndarray,
    attributes: np.ndarray,
    vertex_face: np.ndarray,
    vertex_dist: np.ndarray,
    lo_vertices: np.ndarray,
    lo_faces: np.ndarray,
    lo_uvs: np.ndarray,
    face_chart: np.ndarray,
    size: int,
    device: str = "cuda",
) -> tuple[np.ndarray, np.ndarray]:
    """``transfer.splat`` on a torch device; same arguments and returns (numpy arrays).

    values (size, size, k) float32, face (size, size) int32 (-1 where empty).
    """
    values, out_face = splat_tensors(
        hi_vertices, hi_faces, attributes, vertex_face, vertex_dist, lo_vertices, lo_faces,
        lo_uvs, face_chart, size, device,
    )  # fmt: skip
    return (
        values.reshape(size, size, -1).cpu().numpy(),
        out_face.reshape(size, size).cpu().numpy(),
    )


def splat_tensors(
    hi_vertices: np.ndarray, hi_faces: np.ndarray, attributes: np.ndarray, vertex_face: Any,
    vertex_dist: Any, lo_vertices: np.ndarray, lo_faces: np.ndarray, lo_uvs: np.ndarray,
    face_chart: np.ndarray, size: int, device: str = "cuda",
) -> tuple[Any, Any]:  # fmt: skip
    """:func:`splat` leaving its answers on the device: values (size * size, k) float32 and
    face (size * size,) int32 tensors, row-major texels, so the bake's next steps read them
    there instead of from a host copy of the whole atlas."""
    torch = _torch()
    dev = torch.device(device)
    matrix, origin = transfer.face_uv_maps(lo_vertices, lo_faces, lo_uvs)
    origin = origin - np.einsum(
        "fij,fj->fi", matrix, lo_vertices[lo_faces[:, 0]].astype(np.float64)
    )
    # Uploaded in their own dtypes and widened on the device: half the bytes cross the bus and
    # the host makes no float64 / int64 copy (float32 -> float64 is exact).
    hi_faces_t = torch.as_tensor(np.ascontiguousarray(hi_faces), device=dev).long()
    # vertex_face / vertex_dist may already be on the device (torch_closest.py's answers).
    vface = torch.as_tensor(vertex_face, device=dev).to(torch.int64)
    chart = torch.as_tensor(np.asarray(face_chart, np.int64), device=dev)
    # Copy k of triangle t goes through the low-res face of its corner k, unless an earlier
    # corner's face has the same chart: what the sequential kernel's skips do. Every triangle
    # keeps three copy slots (t * 3 + k, the kernel's order); a skipped one draws nothing.
    corner_face = vface[hi_faces_t]  # (M, 3)
    corner_chart = chart[corner_face]
    keep = torch.ones_like(corner_chart, dtype=torch.bool)
    keep[:, 1] = corner_chart[:, 1] != corner_chart[:, 0]
    keep[:, 2] = (corner_chart[:, 2] != corner_chart[:, 0]) & (
        corner_chart[:, 2] != corner_chart[:, 1]
    )
    through = corner_face.reshape(-1)  # (3 M,)
    corners = hi_faces_t.repeat_interleave(3, dim=0)  # (3 M, 3): copy -> its triangle's corners
    # Corner pixel positions: (copies, 3 corners, 2).
    points = torch.as_tensor(np.ascontiguousarray(hi_vertices), device=dev).double()[corners]
    affine = rows(torch.as_tensor(matrix, device=dev), through)  # (c, 2, 3)
    shift = rows(torch.as_tensor(origin, device=dev), through)  # (c, 2)
    pixel = _project(points, affine, shift, size)
    corner_depth = torch.as_tensor(vertex_dist, device=dev).to(torch.float32)
    corner_depth = corner_depth[corners].double()  # (c, 3)
    # One int64 per texel: the winning depth's order key in the high half, the copy in the
    # low half, so one scatter-min keeps the nearest copy and, among equals, the earliest.
    best = torch.full((size * size,), _NO_KEY, dtype=torch.int64, device=dev)
    col0, col1, row0, row1 = _box(pixel, size)
    count = (col1 - col0 + 1).clamp(min=0) * (row1 - row0 + 1).clamp(min=0)
    count = torch.where(keep.reshape(-1), count, 0)
    for first, last, total in _chunks(count):
        _draw(torch, first, last, total, pixel, corner_depth, col0, row0, col1 - col0 + 1,
              count, size, best)  # fmt: skip
    filled = best != _NO_KEY
    if len(pixel) == 0:  # no high-res triangle: an empty atlas
        values = torch.zeros((size * size, attributes.shape[1]), dtype=torch.float32, device=dev)
        return values, torch.full((size * size,), -1, dtype=torch.int32, device=dev)
    copy = torch.where(filled, best & 0xFFFFFFFF, 0)
    # The winner's barycentric weights, recomputed per texel with _draw's arithmetic.
    texel = torch.arange(size * size, device=dev)
    w0, w1, w2, _ = _weights(rows(pixel, copy), (texel % size).double() + 0.5,
                             (texel // size).double() + 0.5)  # fmt: skip
    attrs = (attributes if torch.is_tensor(attributes)  # made on the device (bake.py)
             else torch.as_tensor(np.ascontiguousarray(attributes))).to(dev).float()  # fmt: skip
    at = corners[copy]  # (s * s, 3)
    values = (
        w0[:, None] * attrs[at[:, 0]].double()
        + w1[:, None] * attrs[at[:, 1]].double()
        + w2[:, None] * attrs[at[:, 2]].double()
    ).float()
    values = torch.where(filled[:, None], values, 0.0)
    out_face = torch.where(filled, through[copy], -1).int()
    return values, out_face


_NO_KEY = 2**63 - 1  # a texel no copy reached


def _project(points: Any, affine: Any, shift: Any, size: int) -> Any:
    """Texel positions (c, 3, 2) of corners points (c, 3, 3) through affine maps (c, 2, 3) +
    shift (c, 2): transfer._project's operations in its order, ((o + m0 x) + m1 y) + m2 z,
    times the size (a batched matrix product (einsum) rounds in another order, and on CUDA
    ran as 37 float64 GEMM launches, 13 ms of the 2048 px bake: here, six elementwise kernels)."""
    pixel = shift[:, None, :] + affine[:, None, :, 0] * points[:, :, None, 0]
    pixel = pixel + affine[:, None, :, 1] * points[:, :, None, 1]
    pixel = pixel + affine[:, None, :, 2] * points[:, :, None, 2]
    return pixel * size


def _box(pixel: Any, size: int) -> tuple[Any, Any, Any, Any]:
    """Texel column / row ranges (inclusive) of each copy's bounding box, clipped to the image."""
    torch = _torch()
    low = torch.floor(pixel.min(dim=1).values - 0.5).clamp(min=0).long()
    high = torch.ceil(pixel.max(dim=1).values - 0.5).clamp(max=size - 1).long()
    return low[:, 0], high[:, 0], low[:, 1], high[:, 1]


def _chunks(count: Any) -> list[tuple[int, int, int]]:
    """(first, last, texels) copy ranges whose boxes hold about TEXELS_PER_CHUNK texels
    together. The running sums stay on the device; only the total and the few chunk edges
    come to the host (15M box sizes of a 5M-face source were a 120 MB copy and a host cumsum)."""
    torch = _torch()
    if len(count) == 0:
        return []
    ends = torch.cumsum(count, 0)
    total = int(ends[-1])
    bounds = np.zeros(0, np.int64)
    if total > TEXELS_PER_CHUNK:
        marks = torch.arange(TEXELS_PER_CHUNK, total, TEXELS_PER_CHUNK, device=count.device)
        bounds = torch.searchsorted(ends, marks).cpu().numpy()
    edges = np.unique(np.concatenate([[0], bounds + 1, [len(ends)]]))
    done = torch.cat([ends.new_zeros(1), ends])[torch.as_tensor(edges, device=count.device)]
    done = done.cpu().numpy()
    return [(int(a), int(b), int(done[j + 1] - done[j]))
            for j, (a, b) in enumerate(itertools.pairwise(edges))
            if b > a and done[j + 1] > done[j]]  # fmt: skip


def _weights(p: Any, x: Any, y: Any) -> tuple[Any, Any, Any, Any]:
    """Barycentric weights (w0, w1, w2) of texel centres (x, y) in triangles p (q, 3, 2), and
    whether the triangle is non-degenerate; the sequential kernel's arithmetic."""
    torch = _torch()
    ex1, ey1 = p[:, 1, 0] - p[:, 0, 0], p[:, 1, 1] - p[:, 0, 1]
    ex2, ey2 = p[:, 2, 0] - p[:, 0, 0], p[:, 2, 1] - p[:, 0, 1]
    det = ex1 * ey2 - ex2 * ey1
    dx, dy = x - p[:, 0, 0], y - p[:, 0, 1]
    inv = 1.0 / torch.where(det == 0, torch.ones_like(det), det)
    w1 = (dx * ey2 - ex2 * dy) * inv
    w2 = (ex1 * dy - dx * ey1) * inv
    w0 = 1.0 - w1 - w2
    return w0, w1, w2, det != 0


def _draw(torch: Any, first: int, last: int, total: int, pixel: Any, corner_depth: Any,
          col0: Any, row0: Any, width: Any, count: Any, size: int, best: Any) -> None:  # fmt: skip
    """Scatter-min the (depth, copy) keys of copies first..last-1 into the texels they cover."""
    dev = pixel.device
    part = count[first:last]
    owner = torch.repeat_interleave(torch.arange(first, last, device=dev), part,
                                    output_size=total)  # fmt: skip
    start = torch.cumsum(part, 0) - part
    local = torch.arange(total, device=dev) - start[owner - first]
    row = row0[owner] + local // width[owner]
    col = col0[owner] + local % width[owner]
    w0, w1, w2, solid = _weights(rows(pixel, owner), col.double() + 0.5, row.double() + 0.5)
    inside = solid & (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
    d = corner_depth[owner]
    # The sequential kernel stores depths as float32: compare the same rounded values.
    z = (w0 * d[:, 0] + w1 * d[:, 1] + w2 * d[:, 2]).float() + 0.0  # + 0.0: no -0.0
    bits = z.view(torch.int32)
    order = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF).long()  # float order as integers
    key = order * 2**32 + owner
    # Outside texels and depths that can never win (inf, NaN) scatter the empty key: no
    # compaction (a host wait) is needed.
    key = torch.where(inside & (z < float("inf")), key, _NO_KEY)
    best.scatter_reduce_(0, row * size + col, key, reduce="amin")


def query_field(
    point_field: PointField, points: np.ndarray, channels: int, device: str
) -> np.ndarray | None:
    """Evaluate a field's ``torch_field`` (tensor (k, 3) -> tensor (k, c)) on ``device`` in
    large batches: points (k, 3) -> (k, channels) float32 in [0, 1], or None when the field
    has no torch form (the caller then uses the numpy one)."""
    if getattr(point_field, "torch_field", None) is None:
        return None
    up = _torch().as_tensor(np.ascontiguousarray(points, np.float32), device=device)
    return query_field_tensor(point_field, up, channels).cpu().numpy()


def query_field_tensor(point_field: PointField, points: Any, channels: int) -> Any:
    """:func:`query_field` for points (k, 3) already a tensor on the device (the bake's texel
    positions, left there), in batches of FIELD_BATCH: the answer (k, channels) float32 left
    there too; None when the field has no torch form."""
    torch_field = getattr(point_field, "torch_field", None)
    if torch_field is None:
        return None
    torch = _torch()
    out = torch.empty((len(points), channels), dtype=torch.float32, device=points.device)
    with torch.no_grad():
        for start in range(0, len(points), FIELD_BATCH):
            chunk = points[start : start + FIELD_BATCH].float().contiguous()
            result = torch_field(chunk)[:, :channels].float().clamp(0.0, 1.0)
            out[start : start + len(chunk)] = result
    return out
