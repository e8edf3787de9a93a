"""Inner-shell removal's views drawn on a torch device: inner_shells.py's answer, batched.

inner_shells.py decides which patches some outside view can see by drawing up to 48
orthographic depth + face-id images (numba, a view per thread). Here a round of views is drawn
at once: every (view, face) pair lists the pixel centres of its bounding box, keeps those that
pass the same edge test in the same float64 arithmetic (same projection, same slack, same
back-face culling of closed outward patches), and each pixel keeps the nearest face, ties to the
lowest face index: exactly what the sequential kernel's strict ``z < zbuf`` over faces in order
leaves. The depth is float64 there, too wide to share an int64 key with the face, so a pixel's
winner is kept lexicographically in two scatter-mins per chunk (depth, then face among the
candidates at that depth, a pixel's face forgotten when a later chunk brings it nearer).
The patches, their culling and the vertex bookkeeping are made on the device too (the same
numbers as inner_shells.patch_setup); the rounds stop once every patch is seen, as there.
torch is imported only here.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from backend.geometry import adjacency, clean, inner_shells, tolerances, torch_clean
from backend.geometry.inner_shells import _EDGE_EPS, _SPAN_EPS, InnerShellResult
from backend.geometry.torch_host import to_numpy

ROUND_VIEWS = 16  # views drawn together (one host wait per round: has every patch been seen?)
# Bounds on memory in flight (estimates, ~25 float64 / int64 temporaries each): about 1.6 GB
# of (view, face) pairs boxed at once, about 4 GB of pixel candidates tested at once. On a
# noisy 3.8M-face mesh a view has ~3.8M pairs of which ~0.6M hold a pixel centre.
PAIRS_PER_CHUNK = 8_000_000
CANDIDATES_PER_CHUNK = 16_000_000


def _torch() -> Any:
    import torch  # optional dependency: only the torch geometry path needs it

    return torch


def remove_inner_shells(
    cleaned: clean.CleanResult,
    directions: int = tolerances.VISIBILITY_DIRECTIONS,
    pixels: int = tolerances.VISIBILITY_PIXELS,
    device: str = "cpu",
) -> tuple[clean.CleanResult, InnerShellResult]:
    """``inner_shells.remove_inner_shells`` with the views drawn on ``device``."""
    found = find_inner_shells(cleaned.vertices, cleaned.faces, directions, pixels,
                              cleaned.face_pairs, device)  # fmt: skip
    return inner_shells.without_hidden(cleaned, found), found


def find_inner_shells(
    vertices: np.ndarray,
    faces: np.ndarray,
    directions: int = tolerances.VISIBILITY_DIRECTIONS,
    pixels: int = tolerances.VISIBILITY_PIXELS,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    device: str = "cpu",
    round_views: int = ROUND_VIEWS,
) -> InnerShellResult:
    """``inner_shells.find_inner_shells`` with the views drawn on ``device``: the same hidden
    faces (``views_drawn`` counts this module's rounds)."""
    torch = _torch()
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    dev = torch.device(device)
    faces_t = torch.as_tensor(faces, device=dev)
    setup = patch_setup(vertices, faces, faces_t, pairs)
    count, patch, lowest, alone = setup.count, setup.patch, setup.lowest, setup.alone
    patch_np = to_numpy(patch)
    if count <= 1:
        return InnerShellResult(np.zeros(len(faces), dtype=bool), patch_np, count, 0, 0)
    scene = _Scene(vertices, faces_t, setup.cull, pixels, dev)
    seen = torch.zeros(count + 1, dtype=torch.bool, device=dev)  # slot ``count``: nobody
    views = inner_shells.view_directions(directions)[inner_shells.spread_order(directions)]
    drawn = 0
    for begin in range(0, directions, round_views):
        batch = views[begin : begin + round_views]
        face_id = scene.draw(batch)
        drawn += len(batch)
        seen_face, outside = scene.seen_and_outside(face_id)
        seen[torch.where(seen_face, patch, count)] = True
        seen[torch.where(outside & alone, lowest, count)] = True
        if bool(seen[:count].all()):
            break
    seen_np = to_numpy(seen[:count])
    hidden = ~seen_np[patch_np]
    return InnerShellResult(hidden, patch_np, count, int(count - seen_np.sum()), directions,
                            drawn)  # fmt: skip


def patch_setup(
    vertices: np.ndarray,
    faces: np.ndarray,
    faces_t: Any,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> inner_shells.PatchSetup:
    """``inner_shells.patch_setup`` with tensors on ``faces_t``'s device (the same numbers):
    patches by label propagation over the manifold face pairs, each labelled by its lowest
    face as the union-find does. The patches' volumes alone are summed on the host (numpy's
    summation order, so a closed patch of near-zero volume gets the same sign)."""
    torch = _torch()
    dev = faces_t.device
    a, b, disagree = pairs or adjacency.manifold_face_pairs(faces, len(vertices))
    a_t, b_t = torch.as_tensor(a, device=dev), torch.as_tensor(b, device=dev)
    m = len(faces)
    count, patch = _surface_patches(a_t, b_t, m)
    if count <= 1:
        empty = torch.zeros(0, dtype=torch.bool, device=dev)
        return inner_shells.PatchSetup(count, patch, empty, empty.long(), empty)
    edges = torch.bincount(a_t, minlength=m) + torch.bincount(b_t, minlength=m)
    open_faces = torch.zeros(count, dtype=torch.int64, device=dev)
    open_faces.index_add_(0, patch, (edges != 3).long())
    closed = open_faces == 0
    closed[patch[torch.as_tensor(a[disagree], device=dev)]] = False
    volume = np.bincount(to_numpy(patch), weights=clean.signed_volumes(vertices, faces),
                         minlength=count)  # fmt: skip
    outward = closed & torch.as_tensor(volume > 0, device=dev)
    corner_patch = patch.repeat_interleave(3)
    lowest = torch.full((len(vertices),), m, dtype=torch.int64, device=dev)
    lowest.scatter_reduce_(0, faces_t.reshape(-1), corner_patch, reduce="amin")
    highest = torch.full((len(vertices),), -1, dtype=torch.int64, device=dev)
    highest.scatter_reduce_(0, faces_t.reshape(-1), corner_patch, reduce="amax")
    lowest = torch.where(lowest == m, -1, lowest)
    return inner_shells.PatchSetup(count, patch, outward[patch], lowest,
                                   (lowest == highest) & (lowest >= 0))  # fmt: skip


def _surface_patches(a: Any, b: Any, m: int) -> tuple[int, Any]:
    """(count, (m,) patch id per face): faces joined across the pairs (a, b), ids numbered by
    each patch's lowest face, as inner_shells.surface_patches numbers them."""
    torch = _torch()
    label = torch_clean.root_labels(a, b, m)
    index = torch.arange(m, device=a.device)
    is_root = label == index
    return int(is_root.sum()), (torch.cumsum(is_root, 0) - 1)[label]


def view_images(
    vertices: np.ndarray,
    faces: np.ndarray,
    views: np.ndarray,
    pixels: int,
    cull: np.ndarray | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The views (k, 3) drawn on ``device``, one by one as the answer goes: face-id images
    (k, pixels, pixels) int64 (-1 where empty), seen (k, m) bool and outside (k, n) bool per
    view. For checking against the numba kernel; the pipeline only needs their union."""
    torch = _torch()
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if cull is None:
        cull = np.zeros(len(faces), dtype=bool)
    scene = _Scene(vertices, faces, cull, pixels, torch.device(device))
    face_id = scene.draw(np.asarray(views, dtype=np.float64).reshape(-1, 3))
    k = len(face_id)
    images = torch.where(face_id < len(faces), face_id, -1).reshape(k, pixels, pixels)
    seen = torch.zeros((k, len(faces) + 1), dtype=torch.bool, device=face_id.device)
    seen.scatter_(1, face_id, True)
    outside = scene.outside_per_view(face_id)
    return images.cpu().numpy(), seen[:, :-1].cpu().numpy(), outside.cpu().numpy()


class _Scene:
    """The mesh in the views' frame on the device: unit-ball positions (n, 3) float64, faces
    (m, 3) int64 and culled faces' normals (m, 3) float32 (zero for the rest), as
    inner_shells._visible_rounds makes them."""

    def __init__(self, vertices: np.ndarray, faces: Any, cull: Any, pixels: int,
                 dev: Any) -> None:  # fmt: skip
        torch = _torch()
        # Uploaded in its own dtype and widened there (float32 -> float64 is exact); the box's
        # corners are exact too, so the host makes the frame from them as numpy would, and
        # the elementwise subtract and divide round as numpy's do.
        raw = torch.as_tensor(np.ascontiguousarray(vertices), device=dev).double()
        corners = torch.stack([raw.min(dim=0).values, raw.max(dim=0).values]).cpu().numpy()
        centre, radius = inner_shells.box_sphere(corners[0], corners[1])
        self.unit = (raw - torch.as_tensor(centre, device=dev)) / radius
        self.faces = torch.as_tensor(faces, device=dev)  # no copy when already there
        self.pixels = pixels
        self.facing = _face_normals(self.unit, self.faces, torch.as_tensor(cull, device=dev))
        self.points: tuple[Any, Any] | None = None

    def draw(self, views: np.ndarray) -> Any:
        """Face-id images of the views (k, 3): (k, pixels * pixels) int64, m where empty.
        Keeps the views' projected vertices for :meth:`seen_and_outside`."""
        torch = _torch()
        x, y, depth = self._project(views)
        self.points = (x, y)
        k, m, size = len(views), len(self.faces), self.pixels
        dev = self.unit.device
        zbuf = torch.full((k * size * size,), float("inf"), dtype=torch.float64, device=dev)
        best = torch.full((k * size * size,), m, dtype=torch.int64, device=dev)
        direction = torch.as_tensor(np.asarray(views, np.float64), device=dev)
        step = max(1, PAIRS_PER_CHUNK // k)
        for first in range(0, m, step):
            boxes = _boxes(self, x, y, depth, direction, first, min(first + step, m))
            if boxes is not None:
                _fill(boxes, size, zbuf, best, m)
        return best.reshape(k, size * size)

    def seen_and_outside(self, face_id: Any) -> tuple[Any, Any]:
        """seen (m,) bool: faces some view shows; outside (n,) bool: vertices some view
        projects onto an empty pixel."""
        torch = _torch()
        seen = torch.zeros(len(self.faces) + 1, dtype=torch.bool, device=face_id.device)
        seen[face_id.reshape(-1)] = True
        return seen[:-1], self.outside_per_view(face_id).any(dim=0)

    def outside_per_view(self, face_id: Any) -> Any:
        """(k, n) bool: vertex i projects onto an empty pixel of view k (the kernel's
        truncating, clipped pixel lookup)."""
        assert self.points is not None
        x, y = self.points
        last = self.pixels - 1
        col = (x + 0.5).trunc().clamp(0, last).long()
        row = (y + 0.5).trunc().clamp(0, last).long()
        return face_id.gather(1, row * self.pixels + col) == len(self.faces)

    def _project(self, views: np.ndarray) -> tuple[Any, Any, Any]:
        """inner_shells._project for every view at once: x, y (k, n) pixel units shifted by
        half a pixel, depth (k, n), one elementwise op at a time (so no op is fused
        differently from the kernel's)."""
        torch = _torch()
        dev = self.unit.device
        frames = [inner_shells.view_frame(view) for view in views]
        e1 = torch.tensor([frame[0] for frame in frames], dtype=torch.float64, device=dev)
        e2 = torch.tensor([frame[1] for frame in frames], dtype=torch.float64, device=dev)
        d = torch.as_tensor(np.asarray(views, np.float64), device=dev)
        ux, uy, uz = (self.unit[:, axis][None, :] for axis in range(3))
        half = 0.5 * self.pixels

        def along(axes: Any) -> Any:
            return ux * axes[:, 0:1] + uy * axes[:, 1:2] + uz * axes[:, 2:3]

        x = half + half * along(e1) - 0.5
        y = half + half * along(e2) - 0.5
        return x, y, -along(d)


def _face_normals(unit: Any, faces: Any, cull: Any) -> Any:
    """inner_shells._face_normals on tensors: (m, 3) float32 normals of culled faces, else 0."""
    torch = _torch()
    a, b, c = unit[faces[:, 0]], unit[faces[:, 1]], unit[faces[:, 2]]
    e1, e2 = b - a, c - a
    normal = torch.stack([
        e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1],
        e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2],
        e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0],
    ], dim=1).float()  # fmt: skip
    return torch.where(cull[:, None], normal, 0.0)


def _first_centre(low: Any) -> Any:
    """inner_shells._centre_span's first index before clipping: truncate, then step up."""
    low = low - _SPAN_EPS
    first = low.trunc()
    return (first + (low > first).double()).clamp(min=0).long()


def _boxes(scene: _Scene, x: Any, y: Any, depth: Any, direction: Any, first: int,
           last: int) -> dict[str, Any] | None:  # fmt: skip
    """The (view, face) pairs of faces first..last-1 that may cover a pixel centre: facing the
    view or not culled, non-degenerate, with pixel centres in their bounds. Per pair what its
    pixel tests read (corner a, the edge differences and 1 / det as the kernel forms them,
    the corners' depths), its face, pixel base, box origin, width and pixel count; None when
    there are none."""
    torch = _torch()
    size = scene.pixels
    f = scene.faces[first:last]
    normal = scene.facing[first:last].double()
    # (k, c): the kernel's float32 normal widened, its dot product's order.
    dot = (normal[None, :, 0] * direction[:, 0:1] + normal[None, :, 1] * direction[:, 1:2]
           + normal[None, :, 2] * direction[:, 2:3])  # fmt: skip
    ax, bx, cx = x[:, f[:, 0]], x[:, f[:, 1]], x[:, f[:, 2]]
    ay, by, cy = y[:, f[:, 0]], y[:, f[:, 1]], y[:, f[:, 2]]
    col0 = _first_centre(torch.minimum(torch.minimum(ax, bx), cx))
    col1 = (torch.maximum(torch.maximum(ax, bx), cx) + _SPAN_EPS).trunc().clamp(max=size - 1)
    row0 = _first_centre(torch.minimum(torch.minimum(ay, by), cy))
    row1 = (torch.maximum(torch.maximum(ay, by), cy) + _SPAN_EPS).trunc().clamp(max=size - 1)
    width = (col1.long() - col0 + 1).clamp(min=0)
    count = width * (row1.long() - row0 + 1).clamp(min=0)
    bax, cay, cax, bay = bx - ax, cy - ay, cx - ax, by - ay
    det = bax * cay - cax * bay
    count = torch.where((dot < 0.0) | (det == 0.0), 0, count)
    pick = count.reshape(-1).nonzero().squeeze(1)  # a host wait: most pairs cover no centre
    if len(pick) == 0:
        return None
    view, local = pick // len(f), pick % len(f)

    def picked(values: Any) -> Any:
        return values.reshape(-1).index_select(0, pick)

    corners = f.index_select(0, local)
    flat = corners + (view * x.shape[1])[:, None]  # the corners in the flattened (k, n) arrays
    return {
        "face": local + first, "base": view * size * size,
        "ax": picked(ax), "ay": picked(ay), "bax": picked(bax), "cay": picked(cay),
        "cax": picked(cax), "bay": picked(bay), "inv": 1.0 / picked(det),
        "da": depth.reshape(-1).index_select(0, flat[:, 0]),
        "db": depth.reshape(-1).index_select(0, flat[:, 1]),
        "dc": depth.reshape(-1).index_select(0, flat[:, 2]),
        "col0": picked(col0), "row0": picked(row0), "width": picked(width),
        "count": picked(count),
    }  # fmt: skip


def _fill(boxes: dict[str, Any], size: int, zbuf: Any, best: Any, empty: int) -> None:
    """Test every pixel centre of the boxes' pairs, in chunks of about CANDIDATES_PER_CHUNK,
    and keep per pixel the nearest face, ties to the lowest index (``zbuf``, ``best``; ``empty``
    marks a pixel no face covers)."""
    torch = _torch()
    count = boxes["count"]
    ends = torch.cumsum(count, 0)
    total = int(ends[-1])
    marks = np.arange(CANDIDATES_PER_CHUNK, total, CANDIDATES_PER_CHUNK)
    cuts = torch.searchsorted(ends, torch.as_tensor(marks, device=ends.device)).tolist()
    bounds = sorted({0, *cuts, len(count)})
    for a, b in itertools.pairwise(bounds):
        if b > a:
            _fill_pairs(boxes, a, b, size, zbuf, best, empty)


def _fill_pairs(boxes: dict[str, Any], a: int, b: int, size: int, zbuf: Any, best: Any,
                empty: int) -> None:  # fmt: skip
    """The pixel centres of pairs a..b-1: the kernel's edge test and depth, then per pixel the
    lexicographic (depth, face) minimum with what earlier chunks left (``empty``: no face)."""
    torch = _torch()
    part = boxes["count"][a:b]
    total = int(part.sum())
    owner = torch.repeat_interleave(torch.arange(a, b, device=part.device), part,
                                    output_size=total)  # fmt: skip
    start = torch.cumsum(part, 0) - part
    local = torch.arange(total, device=part.device) - start[owner - a]

    def mine(name: str) -> Any:
        return boxes[name].index_select(0, owner)

    width = mine("width")
    row = mine("row0") + local // width
    col = mine("col0") + local % width
    dx, dy = col.double() - mine("ax"), row.double() - mine("ay")
    inv = mine("inv")
    w1 = (dx * mine("cay") - mine("cax") * dy) * inv
    w2 = (mine("bax") * dy - dx * mine("bay")) * inv
    w0 = 1.0 - w1 - w2
    inside = (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
    z = w0 * mine("da") + w1 * mine("db") + w2 * mine("dc")
    z = torch.where(inside, z, float("inf"))  # inf never wins (the kernel's zbuf starts there)
    pixel = mine("base") + row * size + col
    before = zbuf.index_select(0, pixel)
    zbuf.scatter_reduce_(0, pixel, z, reduce="amin")
    now = zbuf.index_select(0, pixel)
    # A pixel this chunk brought nearer forgets its face (every candidate of the pixel agrees
    # on that, so the scatter has no conflicting writes); then the lowest face at the depth.
    best.scatter_(0, pixel, torch.where(now < before, empty, best.index_select(0, pixel)))
    winner = torch.where(inside & (z == now), mine("face"), empty)
    best.scatter_reduce_(0, pixel, winner, reduce="amin")
