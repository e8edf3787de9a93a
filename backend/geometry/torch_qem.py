"""The quadric decimator (qem.py) as a data-parallel torch program, for a GPU.

The numba decimator takes one cheapest collapse after another; a GPU wants thousands at once.
So this one works in rounds. Each round rebuilds the edge list from the live faces, prices
every edge with the same quadrics and placement as quadrics.py (area-weighted face planes,
heavy perpendicular planes pinning open borders), and then:

1. takes the cheapest edges as candidates (about twice the collapses still needed, at most
   ``CANDIDATE_SHARE`` of the edges, so an expensive edge never goes before a cheap one that
   is merely blocked this round);
2. refuses what the CPU decimator refuses, with its thresholds (tolerances.py): the link
   condition (the two endpoints share exactly as many neighbours as faces on the edge, so no
   non-manifold edge or pinch appears), an interior edge joining two border vertices, a face
   turned beyond ``FLIP_COS``, a new sliver below ``MIN_FACE_QUALITY``;
3. picks an independent set: two collapses conflict when an endpoint of one is a vertex of a
   face around the other. Every surviving candidate writes its cost rank to its endpoints
   and to its ring's vertices (scatter-min), and wins where it is the cheapest among those it
   conflicts with; a few such passes, each over the candidates no winner blocks, make the set
   nearly maximal. Two winners then share no face and neither moves a vertex of the other's
   faces, so the checks of step 2 stay true when all of them are applied together;
4. applies the winners (cheapest first, no further than the face target): faces on the edge
   die, the removed vertex's faces take the survivor.

On a GPU a round is bound by launches and by the host waiting for the device, so a round waits
three times only: the edge list's size (``unique``), the ring sizes (one read for all three),
and the face compaction, whose new count also tells whether anything won. Everything else is
fixed-size tensors with masks: refused candidates stay in place, the independent-set passes
always run ``PASSES`` times, and losing candidates write a spare vertex row (index n).
Between the waits a round is two functions, the pricing (``_price``) and the choice
(``_choose``), which run compiled where the backend compiles (``backend.torch_compile``).

Memory: a job's peak is the decimator's biggest buffers alive together, so nothing is built for
every ring face or every half-edge at once. The plane quadrics, the edge costs and the face
checks run in ``SLICES`` slices (launches, not waits: the sizes are known on the host; fewer,
larger ones on a GPU, where each is a compiled call's overhead), only the
candidates' placements leave the pricing, and the independent set reads the ends' neighbours
(the vertices of the faces around them, a third of the corners). About 0.8 KB per input face
on the CPU, where the first version took 3.8 KB (18 GiB on a GPU for a 5M-face mesh).

Runs on any torch device (the tests run it on the CPU); float64 throughout, as the CPU path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.geometry import tolerances, torch_sums
from backend.geometry.torch_host import to_numpy_all

CANDIDATE_SHARE = 0.4  # at most this share of the edges competes in one round
PASSES = 4  # independent-set passes per round: each adds the winners the last one unblocked
MAX_ROUNDS = 400  # a safety net: the face count falls geometrically, ~30 rounds at 800k -> 20k
_INT_MAX = 2**62
# The compiled steps' scatter-add counters (ring hits, refusals, per-vertex counts, all far
# below 2^31) are int32, not int64: inductor has no int64 atomic add, so each int64
# index_add_ in a compiled function fell back to aten.index_put_(accumulate=True), on CUDA a
# sort of the indices and several launches; ~330 such calls, ~0.08 s of host time, in the
# 800k-face decimation on an H200 (its profile). int32 adds fuse into the compiled kernels.


def _torch() -> Any:
    import torch  # optional dependency: only the torch geometry path needs it

    return torch


_COMPILED: dict[str, Any] = {}


def _kernel(function: Any, device: Any) -> Any:
    """``function`` compiled where the backend compiles (``backend.torch_compile``): eager, a
    round's pricing is ~150 elementwise kernels and its choice (refusals, independent set)
    ~300; compiled, a few dozen. Between the round's waits only, so dynamic shapes compile
    once: no data-dependent size inside."""
    from backend.torch_compile import compile_or_eager, should_compile

    if not should_compile(device):
        return function
    name = function.__name__
    if name not in _COMPILED:
        from backend.torch_ahead import compiled_ahead

        # Floats specialised: the thresholds (tolerances.FLIP_COS, MIN_FACE_QUALITY) are
        # constants of the kernels. By default each was a graph input, made a tensor on every
        # call (torch._as_tensor_fullprec; on CUDA also copied to the device). Kept on disk
        # (torch_ahead.py): a fresh process would trace the six regions again, ~15 s on a GPU.
        compiled = compiled_ahead(function, device, {"specialize_float": True})
        # setdefault: two threads here at once (warm-up, first job) keep one wrapper, one build
        _COMPILED.setdefault(name, compile_or_eager(compiled, function, f"the decimator's {name}"))
    return _COMPILED[name]


def collapse(
    vertices: np.ndarray,
    faces: np.ndarray,
    target_faces: int,
    endpoint: bool = False,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``qem.collapse`` in torch on ``device``: same arguments and returns (numpy arrays).

    vertices (n, 3), faces (m, 3) -> (vertices (n', 3) float32, faces (m', 3) int64,
    origin (n',) input index of each kept vertex, owner (n,) output vertex each input vertex
    merged into).
    """
    torch = _torch()
    dev = torch.device(device)
    pos, centre, scale = unit_frame(vertices, dev)
    work = torch.as_tensor(np.asarray(faces, dtype=np.int64), device=dev)
    out_pos, out_faces, origin, owner = collapse_tensors(pos, work, target_faces, endpoint)
    pos_np, faces_np, origin_np, owner_np = to_numpy_all([out_pos, out_faces, origin, owner])
    return (pos_np * scale + centre).astype(np.float32), faces_np, origin_np, owner_np


def unit_frame(vertices: np.ndarray, device: Any) -> tuple[Any, np.ndarray, float]:
    """qem.collapse's unit frame made on ``device``: (pos (n, 3) float64 tensor there, centre
    (3,) float64, scale) with pos == (vertices.astype(float64) - centre) / scale bit for bit.

    The vertices go up in their own dtype (float32: half the bytes of a float64 copy), the
    bounds are taken there (numpy's strided column min / max took ~10 ms each on 400k
    vertices) and the widening, shift and division run there: the same IEEE operations. Only
    the mean stays numpy's: its float32 summation order is the frame's."""
    torch = _torch()
    up = torch.as_tensor(np.ascontiguousarray(vertices), device=device)
    centre = vertices.mean(axis=0).astype(np.float64)
    high, low = torch.stack([up.max(dim=0).values, up.min(dim=0).values]).cpu().numpy()
    scale = float(np.linalg.norm(high - low)) or 1.0
    # Divided by a tensor, not a Python float: CUDA divides by a host scalar as a product with
    # its reciprocal, which can round differently from numpy's division.
    pos = (up.double() - torch.as_tensor(centre, device=device)) / torch.full(
        (1,), scale, dtype=torch.float64, device=device
    )
    return pos, centre, scale


def collapse_tensors(pos: Any, faces: Any, target_faces: int, endpoint: bool = False) -> tuple:
    """The decimation on tensors already on the device: pos (n, 3) float64 (a unit frame),
    faces (m, 3) int64 -> (pos (n', 3), faces (m', 3), origin (n',), owner (n,))."""
    torch = _torch()
    n = pos.shape[0]
    pos = pos.clone()
    quadrics, border = prepare_quadrics(pos, faces, tolerances.BOUNDARY_WEIGHT)
    # One spare row (index n) on every per-vertex array: a round writes its losing candidates
    # there instead of compacting the winners out (a compaction is a host sync).
    pos = torch.cat([pos, pos[:1]])
    quadrics = torch.cat([quadrics, quadrics[:1]])
    border = torch.cat([border, border[:1]])
    parent = torch.arange(n + 1, device=pos.device)
    alive = torch.ones(n + 1, dtype=torch.bool, device=pos.device)
    widen = 1.0
    for _round in range(MAX_ROUNDS):
        excess = faces.shape[0] - target_faces
        if excess <= 0:
            break
        kept, removed, place, merged = _round_collapses(
            pos, faces, quadrics, border, excess, endpoint, widen
        )
        pos[kept] = place
        quadrics[kept] = merged
        border[kept] = border[kept] | border[removed]
        alive.index_fill_(0, removed, False)  # not alive[removed] = False: an upload, a wait
        parent[removed] = kept
        remap = torch.arange(n + 1, device=pos.device)
        remap[removed] = kept
        before = faces.shape[0]
        faces = remap[faces]
        faces = faces[~_repeated(faces)]  # the round's one compaction: its one wait
        if faces.shape[0] == before:  # nothing won
            if widen >= 1.0 / CANDIDATE_SHARE * 8:
                break  # every cheap-enough edge is refused: the topology holds the rest
            widen *= 4.0  # let more (dearer) edges compete before giving up
            continue
        widen = 1.0
    pos, parent, alive = pos[:n], parent[:n], alive[:n]
    while True:  # follow merge chains to the surviving vertex
        grand = parent[parent]
        if torch.equal(grand, parent):
            break
        parent = grand
    origin = torch.nonzero(alive).squeeze(1)
    new_index = torch.full((n,), -1, dtype=torch.int64, device=pos.device)
    new_index[origin] = torch.arange(len(origin), device=pos.device)
    return pos[origin], new_index[faces], origin, new_index[parent]


def _repeated(faces: Any) -> Any:
    return (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    )


def _plane_terms(normal: Any, d: Any, weight: Any) -> Any:
    """(k, 10) weighted quadric coefficients of planes n.x + d = 0 (quadrics.py's order)."""
    torch = _torch()
    a, b, c = normal[:, 0], normal[:, 1], normal[:, 2]
    terms = torch.stack([a * a, a * b, a * c, a * d, b * b, b * c, b * d, c * c, c * d, d * d], 1)
    return terms * weight[:, None]


def prepare_quadrics(pos: Any, faces: Any, boundary_weight: float) -> tuple[Any, Any]:
    """Plane quadrics (n, 10) and border flags (n,), as ``qem.prepare_quadrics``.

    Each vertex adds its planes in the sequential loop's order (its faces', then its border
    edges' as first ends, then as second ends) with ``torch_sums.index_sum``: the same sums on
    every run, where ``index_add_`` on CUDA changed their last bits (and so the asset) from
    run to run. The planes are made a slice of the corners at a time: built all at once, their
    (3m, 10) rows were the decimator's memory peak."""
    torch = _torch()
    n, m = pos.shape[0], faces.shape[0]
    # Border edges: used by one face only. Each gets a plane through it, perpendicular to its
    # face, weighted by its squared length.
    a = faces.reshape(-1)
    # Columns 1, 2, 0 by a roll: a list index is uploaded, and an upload waits for the GPU.
    b = torch.roll(faces, -1, dims=1).reshape(-1)
    key = torch.minimum(a, b) * n + torch.maximum(a, b)
    _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    del key
    half = torch.nonzero(counts[inverse] == 1).squeeze(1)  # the border half-edges, in order
    del inverse, counts
    border = torch.zeros(n, dtype=torch.bool, device=pos.device)
    border[a[half]] = True
    border[b[half]] = True
    edge_terms = _border_terms(pos, faces[half // 3], a[half], b[half], boundary_weight)
    corners, borders = 3 * m, len(half)

    def terms(at: Any) -> Any:  # contribution j: corner j, else border edge (j - 3m) % B
        face = faces[torch.where(at < corners, at, 0) // 3]
        normal, _, length = _face_planes(pos, face)
        d = -(normal * pos[face[:, 0]]).sum(dim=1)
        plane = _plane_terms(normal, d, 0.5 * length)  # a zero-area face adds nothing
        if borders == 0:
            return plane
        edge = edge_terms[torch.where(at < corners, 0, at - corners) % borders]
        return torch.where((at < corners)[:, None], plane, edge)

    owner = torch.cat([a, a[half], b[half]])
    quadrics = torch_sums.index_sum(owner, terms, n, slice_size=3 * _slice_size(m, pos.device))
    return quadrics, border


def _face_planes(pos: Any, faces: Any) -> tuple[Any, Any, Any]:
    """Unit normals (k, 3), the cross products' lengths (k,) (twice the areas) of faces."""
    torch = _torch()
    p0, p1, p2 = pos[faces[:, 0]], pos[faces[:, 1]], pos[faces[:, 2]]
    cross = torch.linalg.cross(p1 - p0, p2 - p0)
    length = cross.norm(dim=1)
    return cross / length.clamp(min=1e-300)[:, None], cross, length


def _border_terms(pos: Any, faces: Any, a: Any, b: Any, weight: float) -> Any:
    """(k, 10) quadric terms of the border half-edges a -> b, each of the face in its row of
    ``faces`` (k, 3): a plane through the edge, perpendicular to its face (zeros where the
    edge or the face has no length)."""
    torch = _torch()
    normal, _, length = _face_planes(pos, faces)
    edge = pos[b] - pos[a]
    side = torch.linalg.cross(edge, normal)
    side_len = side.norm(dim=1)
    good = (side_len > 0) & (length > 0)
    side = side / torch.where(good, side_len, 1.0)[:, None]
    d = -(side * pos[a]).sum(dim=1)
    terms = _plane_terms(side, d, weight * (edge * edge).sum(dim=1))
    return torch.where(good[:, None], terms, 0.0)


def _quadric_cost(q: Any, p: Any) -> Any:
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    return (
        q[:, 0] * x * x + 2 * q[:, 1] * x * y + 2 * q[:, 2] * x * z + 2 * q[:, 3] * x
        + q[:, 4] * y * y + 2 * q[:, 5] * y * z + 2 * q[:, 6] * y
        + q[:, 7] * z * z + 2 * q[:, 8] * z + q[:, 9]
    )  # fmt: skip


def placement(q: Any, pu: Any, pv: Any, endpoint: bool, pin_u: Any, pin_v: Any) -> tuple:
    """``quadrics.placement`` for many edges: (position (k, 3), cost (k,), which (k,): 0 u,
    1 v, 2 elsewhere), with the same order of preference (a pinned end, the optimum near the
    edge, the midpoint, the cheaper end)."""
    torch = _torch()
    mid = (pu + pv) / 2
    cu, cv, cm = _quadric_cost(q, pu), _quadric_cost(q, pv), _quadric_cost(q, mid)
    take_u = cu <= cv
    best = torch.where(take_u[:, None], pu, pv)
    cost = torch.where(take_u, cu, cv)
    which = torch.where(take_u, 0, 1)
    if not endpoint:
        use_mid = (cm < cu) & (cm < cv)
        best = torch.where(use_mid[:, None], mid, best)
        cost = torch.where(use_mid, cm, cost)
        which = torch.where(use_mid, 2, which)
        a00, a01, a02, a11, a12, a22 = q[:, 0], q[:, 1], q[:, 2], q[:, 4], q[:, 5], q[:, 7]
        det = (
            a00 * (a11 * a22 - a12 * a12) - a01 * (a01 * a22 - a12 * a02)
            + a02 * (a01 * a12 - a11 * a02)
        )  # fmt: skip
        scale = (a00 + a11 + a22) ** 3
        solvable = (det.abs() > 1e-9 * scale.abs()) & (scale != 0)
        safe = torch.where(solvable, det, torch.ones_like(det))
        b0, b1, b2 = -q[:, 3], -q[:, 6], -q[:, 8]
        i00, i01, i02 = a11 * a22 - a12 * a12, a02 * a12 - a01 * a22, a01 * a12 - a02 * a11
        i11, i12, i22 = a00 * a22 - a02 * a02, a01 * a02 - a00 * a12, a00 * a11 - a01 * a01
        optimum = torch.stack(
            [
                (i00 * b0 + i01 * b1 + i02 * b2) / safe,
                (i01 * b0 + i11 * b1 + i12 * b2) / safe,
                (i02 * b0 + i12 * b1 + i22 * b2) / safe,
            ],
            dim=1,
        )
        span = (pu - pv).norm(dim=1)
        near = ((optimum - mid) ** 2).sum(dim=1) <= (2.0 * span) ** 2
        use_opt = solvable & near
        best = torch.where(use_opt[:, None], optimum, best)
        cost = torch.where(use_opt, _quadric_cost(q, optimum), cost)
        which = torch.where(use_opt, 2, which)
    only_u = pin_u & ~pin_v
    only_v = pin_v & ~pin_u
    best = torch.where(only_u[:, None], pu, torch.where(only_v[:, None], pv, best))
    cost = torch.where(only_u, cu, torch.where(only_v, cv, cost))
    which = torch.where(only_u, 0, torch.where(only_v, 1, which))
    return best, cost, which


def _csr(keys: Any, values: Any, n: int) -> tuple[Any, Any]:
    """Group ``values`` by ``keys`` in [0, n): (start (n + 1,), values sorted by key)."""
    torch = _torch()
    order = torch.argsort(keys, stable=True)
    start = torch.zeros(n + 1, dtype=torch.int64, device=keys.device)
    # A scatter-add, not bincount: CUDA's bincount reads the largest key back first (a wait).
    # Counted in int32 (see _INT_MAX's note), summed in int64: the same offsets.
    per_key = torch.zeros(n, dtype=torch.int32, device=keys.device)
    per_key.index_add_(0, keys, torch.ones_like(keys, dtype=torch.int32))
    start[1:] = torch.cumsum(per_key, 0, dtype=torch.int64)
    return start, values[order]


def _slice_counts(start: Any, rows: Any) -> Any:
    return start[rows + 1] - start[rows]


def _expand(start: Any, items: Any, rows: Any, count: Any, total: int) -> tuple[Any, Any]:
    """For each row r of ``rows`` (k,) the items of its CSR slice, whose lengths ``count`` sum
    to ``total`` (read by the caller): (row index (q,), item (q,))."""
    torch = _torch()
    arange = torch.arange(len(rows), device=rows.device)
    owner = torch.repeat_interleave(arange, count, output_size=total)
    first = torch.cumsum(count, 0) - count
    local = torch.arange(total, device=rows.device) - first[owner]
    return owner, items[start[rows][owner] + local]


def _faces_ok(pos: Any, tri: Any, moving: Any, place: Any) -> Any:
    """``edge_collapse.face_ok`` for many (face, moved vertex, new position) at once."""
    torch = _torch()
    p = pos[tri]  # (k, 3 corners, 3)
    o1, o2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    moved = torch.where((tri == moving[:, None])[:, :, None], place[:, None, :], p)
    e1, e2 = moved[:, 1] - moved[:, 0], moved[:, 2] - moved[:, 0]
    new_n, old_n = torch.linalg.cross(e1, e2), torch.linalg.cross(o1, o2)
    new_len, old_len = new_n.norm(dim=1), old_n.norm(dim=1)
    flipped = (old_len > 0) & ((new_n * old_n).sum(dim=1) < tolerances.FLIP_COS * new_len * old_len)
    quality = tolerances.MIN_FACE_QUALITY
    root3 = 2.0 * np.sqrt(3.0)
    edges = (e1 * e1).sum(1) + (e2 * e2).sum(1) + ((e2 - e1) ** 2).sum(1)
    old_edges = (o1 * o1).sum(1) + (o2 * o2).sum(1) + ((o2 - o1) ** 2).sum(1)
    sliver = (root3 * new_len < quality * edges) & (root3 * old_len >= quality * old_edges)
    return (new_len != 0) & ~flipped & ~sliver


def _round_collapses(
    pos: Any, faces: Any, quadrics: Any, border: Any, excess: int, endpoint: bool, widen: float
) -> tuple:
    """One round: (kept (k,), removed (k,), new positions (k, 3), merged quadrics (k, 10)) of
    an independent set of allowed collapses removing at most ``excess`` faces, one row per
    candidate; a candidate that does not collapse names the spare vertex row (index n, the
    arrays' last) as both ends. Per-vertex arrays have n + 1 rows; faces use [0, n)."""
    torch = _torch()
    n, dev = pos.shape[0] - 1, pos.device
    a = faces.reshape(-1)
    # Columns 1, 2, 0 by a roll: a list index is uploaded, and an upload waits for the GPU.
    b = torch.roll(faces, -1, dims=1).reshape(-1)
    key = torch.minimum(a, b) * n + torch.maximum(a, b)
    del a, b
    edge_key, edge_faces = torch.unique(key, return_counts=True)
    del key
    # Cheapest candidates first: about twice the collapses still needed (each removes ~2
    # faces and the independent set keeps a part of them), never more than a share of all.
    edges = len(edge_key)
    wanted = int(min(edges, max(64, widen * max(excess, 1)),
                     max(64, widen * CANDIDATE_SHARE * edges)))  # fmt: skip
    # Every edge's cost, a slice at a time: the placement's (e, 10) and (e, 3) temporaries
    # for all edges at once were the round's memory peak.
    if len(_slices(edges, dev)) == 1:  # one compiled call, not two (~0.5 ms each on a GPU)
        priced = _kernel(_price_all, dev)(edge_key, edge_faces, faces, pos, quadrics, border,
                                          endpoint, wanted)  # fmt: skip
    else:
        cost = torch.empty(edges, dtype=pos.dtype, device=dev)
        for lo, size in _slices(edges, dev):
            cost[lo:lo + size] = _kernel(_edge_costs, dev)(edge_key, edge_faces, pos, quadrics,
                                                           border, endpoint, lo, size)  # fmt: skip
        priced = _kernel(_price, dev)(edge_key, edge_faces, faces, pos, quadrics, border,
                                      endpoint, wanted, cost)  # fmt: skip
        del cost
    q, place, which, cu, cv, cand_faces, nb_start, nb_items, vf_start, vf_items, counts, ok = (
        priced
    )
    del priced
    totals = counts.sum(dim=1).tolist()  # the four ring sizes in one wait
    ends = torch.cumsum(counts, dim=1)
    # The faces around each end, checked a slice of the rings at a time: a ring holds ~12
    # faces a candidate, and checking them all at once was the decimator's memory peak.
    if len(_slices(totals[2], dev)) == 1 and len(_slices(totals[3], dev)) == 1:
        bad = _kernel(_rings_bad, dev)(
            pos, faces, vf_start, vf_items, cu, cv, counts[2], ends[2], counts[3], ends[3],
            place, totals[2], totals[3],
        )  # fmt: skip
    else:
        bad = torch.zeros(len(cu), dtype=torch.int32, device=dev)
        for side, moving, other in ((2, cu, cv), (3, cv, cu)):
            for lo, size in _slices(totals[side], dev):
                bad += _kernel(_ring_faces_bad, dev)(
                    pos, faces, vf_start, vf_items, moving, other, counts[side], ends[side],
                    place, lo, size,
                )  # fmt: skip
    ok &= bad == 0
    del bad, vf_start, vf_items
    take = _kernel(_choose, dev)(
        ok, edge_key, cand_faces, cu, cv, nb_start, nb_items, counts[0], counts[1],
        totals[0], totals[1], n, torch.full((), excess, device=dev),  # a fill, not a copy
    )  # fmt: skip
    swap = which == 1  # keep the vertex that stays put (its own data stays exact)
    spare = torch.full_like(cu, n)
    kept = torch.where(take, torch.where(swap, cv, cu), spare)
    removed = torch.where(take, torch.where(swap, cu, cv), spare)
    return kept, removed, place, q


SLICES = 16  # the biggest per-face and per-ring steps run in this many slices
MIN_SLICE = 1 << 14  # rows: below this a slice is not worth its launches (CPU)
# On a GPU every slice is a compiled call whose host overhead (guards, wrappers, ~10 kernel
# launches) is ~0.5-0.9 ms: 16 slices of each step made ~1,750 calls and ~1.2 s of a 5M-face
# job's 1.8 s decimation on an H200. A million rows is what a 16th of that job's first round
# already held, so larger slices add no memory to its peak and cut the calls ~4x.
MIN_DEVICE_SLICE = 1 << 20


def _slices(total: int, device: Any) -> list[tuple[int, int]]:
    """(start, size) slices covering [0, total): ``SLICES`` of them, or fewer when that
    would make them smaller than ``MIN_SLICE`` (``MIN_DEVICE_SLICE`` off the CPU)."""
    size = _slice_size(total, device)
    return [(lo, min(size, total - lo)) for lo in range(0, total, size)]


def _slice_size(total: int, device: Any) -> int:
    smallest = MIN_SLICE if _torch().device(device).type == "cpu" else MIN_DEVICE_SLICE
    return max(smallest, -(-total // SLICES))


def _ends(edge_key: Any, pos: Any) -> tuple[Any, Any]:
    n = pos.shape[0] - 1
    return edge_key // n, edge_key % n


def _placed(eu: Any, ev: Any, edge_faces: Any, pos: Any, quadrics: Any, border: Any,
            endpoint: bool) -> tuple:  # fmt: skip
    """Merged quadrics, placements, costs and kept ends (:func:`placement`) of edges; an
    edge that may not collapse (non-manifold, or an interior edge joining two border
    vertices) costs infinity."""
    torch = _torch()
    allowed = (edge_faces <= 2) & ~(border[eu] & border[ev] & (edge_faces != 1))
    q = quadrics[eu] + quadrics[ev]
    place, cost, which = placement(
        q, pos[eu], pos[ev], endpoint, border[eu] & ~border[ev], border[ev] & ~border[eu]
    )
    return q, place, torch.where(allowed, cost, torch.full_like(cost, float("inf"))), which


def _edge_costs(edge_key: Any, edge_faces: Any, pos: Any, quadrics: Any, border: Any,
                endpoint: bool, lo: int, size: int) -> Any:  # fmt: skip
    """The costs (size,) of edges [lo, lo + size)."""
    eu, ev = _ends(edge_key[lo:lo + size], pos)
    return _placed(eu, ev, edge_faces[lo:lo + size], pos, quadrics, border, endpoint)[2]


def _price(edge_key: Any, edge_faces: Any, faces: Any, pos: Any, quadrics: Any,
           border: Any, endpoint: bool, wanted: int, cost: Any) -> tuple:  # fmt: skip
    """The ``wanted`` cheapest edges by ``cost`` (e,) as candidates (k,): their merged
    quadrics (k, 10), placements (k, 3), kept ends (see :func:`placement`), ends, face
    counts; the vertex -> neighbour and vertex -> face CSR tables; the ring sizes (4, k) of
    the candidates' ends (neighbours of either, faces around either), whose sums the round
    reads; and whether each may collapse so far (a finite cost)."""
    torch = _torch()
    n = pos.shape[0] - 1
    cand = torch.topk(cost, wanted, largest=False, sorted=True).indices
    # Refused (infinite) candidates stay in place, masked by ``ok``: dropping them here
    # would be a wait. Placed again, the candidates get the same rows as in the costs.
    eu, ev = _ends(edge_key, pos)
    cu, cv, cand_faces = eu[cand], ev[cand], edge_faces[cand]
    q, place, _, which = _placed(cu, cv, cand_faces, pos, quadrics, border, endpoint)
    nb_start, nb_items = _csr(torch.cat([eu, ev]), torch.cat([ev, eu]), n)
    corner_face = torch.arange(len(faces), device=pos.device).repeat_interleave(3)
    vf_start, vf_items = _csr(faces.reshape(-1), corner_face, n)
    counts = torch.stack([_slice_counts(nb_start, cu), _slice_counts(nb_start, cv),
                          _slice_counts(vf_start, cu), _slice_counts(vf_start, cv)])  # fmt: skip
    return (q, place, which, cu, cv, cand_faces, nb_start, nb_items, vf_start, vf_items,
            counts, torch.isfinite(cost[cand]))  # fmt: skip


def _price_all(edge_key: Any, edge_faces: Any, faces: Any, pos: Any, quadrics: Any,
               border: Any, endpoint: bool, wanted: int) -> tuple:  # fmt: skip
    """:func:`_price` of every edge's cost (:func:`_edge_costs` in one slice): one call."""
    cost = _edge_costs(edge_key, edge_faces, pos, quadrics, border, endpoint, 0, len(edge_key))
    return _price(edge_key, edge_faces, faces, pos, quadrics, border, endpoint, wanted, cost)


def _expand_slice(start: Any, items: Any, rows: Any, count: Any, ends: Any, lo: int,
                  size: int) -> tuple[Any, Any]:  # fmt: skip
    """Entries [lo, lo + size) of the concatenated CSR slices of ``rows`` (k,) (lengths
    ``count``, running sums ``ends``): (row index (size,), item (size,)), as those entries
    of :func:`_expand`."""
    torch = _torch()
    at = torch.arange(size, device=rows.device) + lo
    owner = torch.searchsorted(ends, at, right=True)
    local = at - (ends[owner] - count[owner])
    return owner, items[start[rows[owner]] + local]


def _ring_faces_bad(pos: Any, faces: Any, vf_start: Any, vf_items: Any, moving: Any,
                    other: Any, count: Any, ends: Any, place: Any, lo: int,
                    size: int) -> Any:  # fmt: skip
    """How many faces (k,) of a slice of the rings around ``moving`` (each candidate's u or
    v end; ``other`` the edge's other end) would turn over or become slivers when that end
    moves to ``place``. (Not cu and cv: the same tensor twice would compile a second time.)"""
    torch = _torch()
    row, face = _expand_slice(vf_start, vf_items, moving, count, ends, lo, size)
    tri = faces[face]
    on_edge = ((tri == moving[row][:, None]).any(1)) & ((tri == other[row][:, None]).any(1))
    good = _faces_ok(pos, tri, moving[row], place[row]) | on_edge
    bad = torch.zeros(len(moving), dtype=torch.int32, device=pos.device)
    return bad.index_add_(0, row, (~good).to(torch.int32))


def _rings_bad(pos: Any, faces: Any, vf_start: Any, vf_items: Any, cu: Any, cv: Any,
               count_u: Any, ends_u: Any, count_v: Any, ends_v: Any, place: Any, total_u: int,
               total_v: int) -> Any:  # fmt: skip
    """:func:`_ring_faces_bad` of both ends' whole rings, summed (k,): one call."""
    return _ring_faces_bad(
        pos, faces, vf_start, vf_items, cu, cv, count_u, ends_u, place, 0, total_u
    ) + _ring_faces_bad(pos, faces, vf_start, vf_items, cv, cu, count_v, ends_v, place, 0, total_v)


def _choose(ok: Any, edge_key: Any, cand_faces: Any, cu: Any, cv: Any, nb_start: Any,
            nb_items: Any, count_u: Any, count_v: Any, total_u: int, total_v: int, n: int,
            excess: Any) -> Any:  # fmt: skip
    """Which candidates (k,) collapse this round: the link condition, the independent set
    and the face target, on the candidates' neighbour rings (sizes ``count_u``, ``count_v``
    summing to the totals); ``ok`` holds the other refusals."""
    torch = _torch()
    dev = ok.device
    row_u, w_u = _expand(nb_start, nb_items, cu, count_u, total_u)
    row_v, w_v = _expand(nb_start, nb_items, cv, count_v, total_v)
    # Link condition: the endpoints' common neighbours are exactly the edge's faces' apexes.
    probe = torch.minimum(cv[row_u], w_u) * n + torch.maximum(cv[row_u], w_u)
    hit = torch.searchsorted(edge_key, probe).clamp(max=len(edge_key) - 1)
    common = torch.zeros(len(cu), dtype=torch.int32, device=dev)
    common.index_add_(0, row_u, (edge_key[hit] == probe).to(torch.int32))
    ok = ok & (common == cand_faces)
    # The vertices of the faces around either end are exactly the ends' neighbours (each
    # end is the other's): the independent set's conflicts, a third of the faces' corners.
    won = _independent(ok, torch.cat([row_u, row_v]), torch.cat([w_u, w_v]), cu, cv, n)
    # Cheapest first, no further than the face target; if even the cheapest winner removes
    # more faces than remain to go, it alone (so a round always makes progress).
    removed_faces = torch.cumsum(torch.where(won, cand_faces, 0), 0)
    take = won & (removed_faces <= excess)
    first = won & (torch.cumsum(won.long(), 0) == 1)
    return torch.where(take.any(), take, first)


def _independent(ok: Any, ring_row: Any, ring_v: Any, cu: Any, cv: Any, n: int) -> Any:
    """Mask (k,) of an independent set of the candidates ``ok`` (k,), whose ring vertices
    (those of the faces around either end) are ``ring_v`` (q,) for candidate ``ring_row``
    (q,) and whose endpoints are ``cu``, ``cv`` (k,); candidates are ranked by their index.
    Always ``PASSES`` passes: a pass with nothing left to add changes nothing, and asking
    whether one is left would be a wait."""
    torch = _torch()
    rank = torch.arange(len(ok), device=ok.device)
    live = ok.clone()
    won = torch.zeros_like(ok)
    for _pass_index in range(PASSES):
        live, won = _pass(live, won, rank, cu, cv, ring_row, ring_v, n)
    return won


def _pass(live: Any, won: Any, rank: Any, cu: Any, cv: Any, ring_row: Any, ring_v: Any,
          n: int) -> tuple[Any, Any]:  # fmt: skip
    """One pass of :func:`_independent`: add the live candidates no cheaper live one beats,
    then drop those their win blocks -> (live, won)."""
    torch = _torch()
    dev = live.device
    mine = torch.where(live, rank, torch.full_like(rank, _INT_MAX))
    at_end = torch.full((n,), _INT_MAX, dtype=torch.int64, device=dev)
    at_end.scatter_reduce_(0, torch.cat([cu, cv]), torch.cat([mine, mine]), reduce="amin")
    in_ring = torch.full((n,), _INT_MAX, dtype=torch.int64, device=dev)
    in_ring.scatter_reduce_(0, ring_v, mine[ring_row], reduce="amin")
    # Beaten: a cheaper live candidate has an endpoint in my ring, or my endpoint in its.
    beaten = torch.zeros(len(live), dtype=torch.int32, device=dev)
    beaten.index_add_(0, ring_row, (at_end[ring_v] < mine[ring_row]).to(torch.int32))
    beaten += (in_ring[cu] < mine).to(torch.int32) + (in_ring[cv] < mine).to(torch.int32)
    fresh = live & (beaten == 0)
    won = won | fresh
    # Block every candidate that conflicts with a new winner, then go again.
    end_taken = torch.zeros(n + 1, dtype=torch.bool, device=dev)
    end_taken[torch.where(fresh, cu, n)] = True
    end_taken[torch.where(fresh, cv, n)] = True
    ring_taken = torch.zeros(n + 1, dtype=torch.bool, device=dev)
    ring_taken[torch.where(fresh[ring_row], ring_v, n)] = True  # losers: the spare slot
    blocked = torch.zeros(len(live), dtype=torch.int32, device=dev)
    blocked.index_add_(0, ring_row, end_taken[ring_v].to(torch.int32))
    blocked += (ring_taken[cu] | ring_taken[cv]).to(torch.int32)
    return live & ~won & (blocked == 0), won
