"""Stage 1 (clean) on a torch device: clean.py's steps as sorts, scatters and gathers.

Same steps and the same answers as ``clean.clean_mesh`` for the inputs a model gives (no
incoming UVs, no hole filling): weld on the grid of WELD_DISTANCE, drop faces that repeat a
vertex, merge the shortest edge of zero-area faces, drop duplicate faces and zero-volume fins,
drop floaters, wind every piece consistently and outward. Pieces are found by label
propagation with pointer jumping. Making a *disagreeing* winding consistent is a walk over the
faces, which stays on the CPU (clean._propagate_flips); marching-cubes and decoder meshes come
consistently wound, so the common case never leaves the device. Vertex order and face order
come out as clean.py's, so the rest of the pipeline sees the same mesh.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.geometry import clean, tolerances, torch_sums
from backend.geometry.torch_host import to_numpy, to_numpy_all


def _torch() -> Any:
    import torch  # optional dependency: only the torch geometry path needs it

    return torch


def supports(corner_attributes: dict | None, fill_holes_enabled: bool) -> bool:
    """True when :func:`clean_mesh` handles the job (otherwise use clean.clean_mesh)."""
    return not corner_attributes and not fill_holes_enabled


def clean_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    attributes: dict[str, np.ndarray] | None = None,
    *,
    floater_fraction: float = tolerances.FLOATER_FRACTION,
    device: str = "cpu",
) -> clean.CleanResult:
    """``clean.clean_mesh`` without corner attributes or hole filling, on ``device``."""
    torch = _torch()
    dev = torch.device(device)
    attributes = dict(attributes or {})
    v = torch.as_tensor(np.asarray(vertices, dtype=np.float32), device=dev)
    f = torch.as_tensor(np.asarray(faces, dtype=np.int64), device=dev)
    low, high = v.min(dim=0).values, v.max(dim=0).values
    diagonal = float((high - low).double().norm()) or 1.0
    report: dict[str, int] = {}
    kept, f = weld(v, f, tolerances.WELD_DISTANCE * diagonal)
    report["welded_vertices"] = len(v) - len(kept)
    v = v[kept]
    kept_np = to_numpy(kept)
    attributes = {name: values[kept_np] for name, values in attributes.items()}
    repeated = _repeated(f)
    f = f[~repeated]
    f, merged = _collapse_zero_area(v, f, tolerances.ZERO_AREA * diagonal**2)
    f = f[~merged]
    report["degenerate_faces"] = int(repeated.sum() + merged.sum())
    drop = _duplicates(f, len(v))
    report["duplicate_faces"] = int(drop.sum())
    f = f[~drop]
    count, labels = components(f, len(v))
    if floater_fraction > 0 and count > 1:
        area = torch_sums.index_sum(labels, _areas(v, f), count, long_rows=True)
        small = area < floater_fraction * area.max()
        drop = small[labels]
        report["floater_faces"] = int(drop.sum())
        f, labels = f[~drop], labels[~drop]
    elif floater_fraction > 0:
        report["floater_faces"] = 0
    pair_a, pair_b, disagree = manifold_pairs(f)
    flip = torch.zeros(len(f), dtype=torch.bool, device=dev)
    if bool(disagree.any()):  # a walk over the faces: the CPU's (rare for generated meshes)
        flip_np = clean._propagate_flips(
            len(f), pair_a.cpu().numpy(), pair_b.cpu().numpy(), disagree.cpu().numpy()
        )
        flip = torch.as_tensor(flip_np, device=dev)
        f = torch.where(flip[:, None], f.flip(1), f)
    # Per piece (labels < count; a dropped floater's row stays 0): a few long rows. The same
    # bits on every run, unlike index_add_ on CUDA, and no wait for the largest label.
    volume = torch_sums.index_sum(labels, _volumes(v, f), count, long_rows=True)
    turn = (volume < 0)[labels]
    f = torch.where(turn[:, None], f.flip(1), f)
    flipped = flip ^ turn
    disagree = disagree ^ flipped[pair_a] ^ flipped[pair_b]
    report["flipped_faces"] = int(flipped.sum())
    used = torch.zeros(len(v), dtype=torch.bool, device=dev)
    used[f.reshape(-1)] = True
    if not bool(used.all()):
        new_index = torch.cumsum(used.long(), 0) - 1
        f = new_index[f]
        used_np = to_numpy(used)
        v = v[used]
        attributes = {name: values[used_np] for name, values in attributes.items()}
    a_np, b_np, disagree_np, v_np, f_np = to_numpy_all([pair_a, pair_b, disagree, v, f])
    return clean.CleanResult(
        v_np, np.ascontiguousarray(f_np), attributes, {}, report, (a_np, b_np, disagree_np)
    )


def weld(v: Any, f: Any, distance: float) -> tuple[Any, Any]:
    """``clean.weld_vertices`` on tensors: (kept (n',), faces remapped)."""
    torch = _torch()
    low = v.min(dim=0).values
    cells = torch.floor((v - low) / max(distance, 1e-30)).long()
    if len(cells) and int(cells.max()) < 2**21:
        keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
        unique, inverse = torch.unique(keys, return_inverse=True)
    else:
        unique, inverse = torch.unique(cells, dim=0, return_inverse=True)
    index = torch.arange(len(v), device=v.device)
    kept = torch.full((len(unique),), len(v), dtype=torch.int64, device=v.device)
    kept.scatter_reduce_(0, inverse, index, reduce="amin")  # the first of each cell
    return kept, inverse[f]


def _repeated(f: Any) -> Any:
    return (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])


def _areas(v: Any, f: Any) -> Any:
    torch = _torch()
    p = v.double()
    cross = torch.linalg.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    return 0.5 * cross.norm(dim=1)


def _volumes(v: Any, f: Any) -> Any:
    torch = _torch()
    p = v.double()
    return (p[f[:, 0]] * torch.linalg.cross(p[f[:, 1]], p[f[:, 2]])).sum(dim=1)


def _collapse_zero_area(v: Any, f: Any, min_area: float) -> tuple[Any, Any]:
    """``clean.collapse_zero_area_faces`` on tensors."""
    torch = _torch()
    flat = _areas(v, f) < min_area
    if not bool(flat.any()):
        return f, torch.zeros(len(f), dtype=torch.bool, device=f.device)
    picked = f[flat]
    corners = v[picked].double()
    lengths = torch.stack(
        [(corners[:, (k + 1) % 3] - corners[:, k]).norm(dim=1) for k in range(3)], dim=1
    )
    shortest = torch.argmin(lengths, dim=1)
    rows = torch.arange(len(shortest), device=f.device)
    a, b = picked[rows, shortest], picked[rows, (shortest + 1) % 3]
    target = torch.arange(len(v), device=f.device)
    target[torch.maximum(a, b)] = torch.minimum(a, b)  # always to the lower index: no cycles
    while True:
        deeper = target[target]
        if torch.equal(deeper, target):
            break
        target = deeper
    f = target[f]
    return f, _repeated(f)


def _duplicates(f: Any, n: int) -> Any:
    """``clean.duplicate_face_mask`` on tensors."""
    torch = _torch()
    if len(f) == 0:
        return torch.zeros(0, dtype=torch.bool, device=f.device)
    ordered = torch.sort(f, dim=1).values
    if n < 2_000_000:
        keys = (ordered[:, 0] * n + ordered[:, 1]) * n + ordered[:, 2]
        unique, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    else:
        unique, inverse, counts = torch.unique(
            ordered, dim=0, return_inverse=True, return_counts=True
        )
    index = torch.arange(len(f), device=f.device)
    first = torch.full((len(unique),), len(f), dtype=torch.int64, device=f.device)
    first.scatter_reduce_(0, inverse, index, reduce="amin")
    mask = torch.ones(len(f), dtype=torch.bool, device=f.device)
    mask[first] = False
    if bool((counts > 1).any()):
        rotations = f[:, 0] == ordered[:, 0]
        parity = torch.where(
            rotations,
            f[:, 1] < f[:, 2],
            torch.where(f[:, 1] == ordered[:, 0], f[:, 2] < f[:, 0], f[:, 0] < f[:, 1]),
        )
        both = torch.zeros(len(counts), dtype=torch.int64, device=f.device)
        both.index_add_(0, inverse, torch.where(parity, 1, 2))
        mask |= ((both[inverse] % 3) == 0) & (counts[inverse] > 1)  # holds both windings
    return mask


def components(f: Any, n: int) -> tuple[int, Any]:
    """Pieces connected through shared vertices: (count, (m,) label per face), labels
    numbered by the lowest vertex of each piece, as adjacency.face_components numbers them."""
    torch = _torch()
    if len(f) == 0:
        return 0, torch.zeros(0, dtype=torch.int64, device=f.device)
    label = root_labels(torch.cat([f[:, 0], f[:, 1]]), torch.cat([f[:, 1], f[:, 2]]), n)
    used, face_label = torch.unique(label[f[:, 0]], return_inverse=True)
    return len(used), face_label


def root_labels(a: Any, b: Any, n: int) -> Any:
    """(n,) the lowest element of each one's component, elements joined along the pairs
    (a[i], b[i]) (tensors on one device): adjacency.union_find's roots, by label propagation."""
    torch = _torch()
    label = torch.arange(n, device=a.device)
    while len(a):  # hook each pair's larger root under the smaller, then jump pointers
        before = label
        low = torch.minimum(label[a], label[b])
        label = label.scatter_reduce(0, label[a], low, reduce="amin")
        label = label.scatter_reduce(0, label[b], low, reduce="amin")
        while True:  # four jumps per check: each check is a host wait, a jump is not
            deeper = label[label]
            deeper = deeper[deeper]
            if torch.equal(deeper, label):  # labels only point down: no cycle, so a root
                break
            label = deeper
        if torch.equal(label, before):
            break
    return label


def manifold_pairs(f: Any) -> tuple[Any, Any, Any]:
    """``adjacency.manifold_face_pairs`` on tensors (faces repeat no vertex): a (p,), b (p,)
    with a < b, and disagree (p,) bool (both faces run the edge the same way)."""
    torch = _torch()
    start = f.reshape(-1)
    end = torch.roll(f, -1, dims=1).reshape(-1)  # columns 1, 2, 0 (a list index uploads)
    n = int(f.max()) + 1 if len(f) else 1
    key = torch.minimum(start, end) * n + torch.maximum(start, end)
    order = torch.argsort(key, stable=True)
    key_sorted = key[order]
    face = order // 3
    forward = (start < end)[order]
    _, counts = torch.unique_consecutive(key_sorted, return_counts=True)
    first = torch.cumsum(counts, 0) - counts
    two = first[counts == 2]
    fa, fb = face[two], face[two + 1]
    same = forward[two] == forward[two + 1]
    keep = fa != fb
    fa, fb, same = fa[keep], fb[keep], same[keep]
    a, b = torch.minimum(fa, fb), torch.maximum(fa, fb)
    return a, b, same
