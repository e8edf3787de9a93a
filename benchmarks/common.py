"""What several model benchmarks share: the synthetic cut-out they feed and a clock that waits
for the device, so that a stage's time includes its queued GPU work."""

from __future__ import annotations

import time

import numpy as np
import torch


def disc_image(size: int = 1024) -> np.ndarray:
    """A synthetic RGBA subject (gradient disc on transparency): (size, size, 4) uint8."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1
    pixels = np.zeros((size, size, 4), np.uint8)
    pixels[..., 0], pixels[..., 1] = (xx * 0.5 + 0.5) * 255, (yy * 0.5 + 0.5) * 255
    pixels[..., 2], pixels[..., 3] = 100, (xx**2 + yy**2 < 0.5) * 255
    return pixels


def synchronised_now(device: torch.device) -> float:
    """time.perf_counter() once ``device``'s queued work is done (CUDA: synchronised)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def spread(seconds: list[float]) -> dict[str, float | int]:
    """Timed repeats -> median (the headline), min, max and how many (the comparison rules)."""
    ordered = sorted(seconds)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"median": round(median, 5), "min": round(ordered[0], 5),
            "max": round(ordered[-1], 5), "n": len(ordered)}  # fmt: skip


def mesh_agreement(
    ours: tuple[np.ndarray, np.ndarray], theirs: tuple[np.ndarray, np.ndarray]
) -> dict:
    """How far two meshes (vertices (n, 3), faces (m, 3)) are apart: sizes, non-finite vertices
    (counted, left out), the symmetric mean nearest-vertex distance over the reference's
    bounding-box diagonal and, where both have the same vertex count, the largest vertex
    difference in the same order and the shares of faces with the same corners and, of all
    faces, with the same winding too."""
    from scipy.spatial import cKDTree

    arrays = [np.asarray(side[0], np.float64) for side in (ours, theirs)]
    finite = [np.isfinite(v).all(axis=1) for v in arrays]
    result: dict = {
        "vertices": [len(v) for v in arrays],
        "faces": [len(side[1]) for side in (ours, theirs)],
        "non_finite_vertices": [int((~f).sum()) for f in finite],
    }
    a, b = (v[f] for v, f in zip(arrays, finite, strict=True))
    if len(a) == 0 or len(b) == 0:
        result["chamfer_over_diagonal"] = None
        return result
    diagonal = float(np.linalg.norm(np.ptp(b, axis=0))) or 1.0
    # Samples of each side asked against the whole other side (two independent samples of
    # the same mesh would be apart by the sampling alone).
    rng = np.random.default_rng(0)
    sa, sb = (v[rng.choice(len(v), min(50_000, len(v)), replace=False)] for v in (a, b))
    chamfer = (cKDTree(b).query(sa)[0].mean() + cKDTree(a).query(sb)[0].mean()) / 2 / diagonal
    result["chamfer_over_diagonal"] = float(chamfer)
    if arrays[0].shape == arrays[1].shape and all(f.all() for f in finite):
        result["max_vertex_diff_over_diagonal"] = float(
            np.abs(arrays[0] - arrays[1]).max() / diagonal
        )
        if np.shape(ours[1]) == np.shape(theirs[1]) and len(ours[1]):
            a_faces, b_faces = np.asarray(ours[1]), np.asarray(theirs[1])
            same = (np.sort(a_faces, axis=1) == np.sort(b_faces, axis=1)).all(axis=1)
            wound = (_rotated(a_faces) == _rotated(b_faces)).all(axis=1)
            # the same corners, face by face; and of those, the same winding (not flipped)
            result["same_triangles_share"] = float(same.mean())
            result["same_winding_share"] = float(wound.mean())
    return result


def _rotated(faces: np.ndarray) -> np.ndarray:
    """Each face's corners rotated so that its smallest index comes first (winding kept)."""
    start = faces.argmin(axis=1)
    order = (start[:, None] + np.arange(3)[None]) % 3
    return np.take_along_axis(faces, order, axis=1)


def upstream_provenance(checkout) -> dict:
    """Which upstream ran: the commit written beside its files (``UPSTREAM_COMMIT``, a fetched
    snapshot has no .git) and the import-only shims loaded in this process (modules marked
    ``__dreamcad_shim__``: stand-ins for packages the compared code imports but never calls)."""
    import sys
    from pathlib import Path

    marker = Path(checkout) / "UPSTREAM_COMMIT" if checkout is not None else None
    commit = marker.read_text().strip() if marker is not None and marker.is_file() else None
    shims = []
    for name, module in list(sys.modules.items()):
        try:
            if "." not in name and getattr(module, "__dreamcad_shim__", False) is True:
                shims.append(name)
        except Exception:  # a lazy module's __getattr__ may raise anything
            continue
    return {"commit": commit, "shims": sorted(shims)}


def host_profile(call, path) -> object:
    """Run ``call()`` once under cProfile and write where the host's time went to ``path``
    (the top functions by own time and by cumulative time): on a GPU a host wait shows as
    time in the call that waits (``.cpu()``, ``.item()``, ``bool(tensor)``), so this also says
    which step's device work the host stalls on. Returns what ``call`` returned."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    result = profiler.runcall(call)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    for order in ("tottime", "cumulative"):
        stats.sort_stats(order).print_stats(45)
    path.write_text(text.getvalue())
    return result
