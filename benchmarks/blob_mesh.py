"""The geometry benchmarks' input: an ~800k-triangle blob (at 464^3) with an analytic colour.

A module of the ``benchmarks`` package of its own, imported by that name everywhere: its numba
kernel is cached on disk, and a cache entry records the module name it was compiled under.
Compiled once as ``geometry_pipeline`` (a script's folder on ``sys.path``), it could not be
loaded back by ``benchmarks.geometry_pipeline`` (``ModuleNotFoundError`` from numba's cache).
"""

from __future__ import annotations

import numba
import numpy as np

from backend.geometry.raw_asset import RawAsset


@numba.njit(cache=True, parallel=False)
def _blob_volume(axis, centres, radii, bumps, bump_radius):
    n = axis.shape[0]
    out = np.empty((n, n, n), np.float32)
    k = 0.08  # polynomial smooth-min blend
    for i in range(n):
        for j in range(n):
            for m in range(n):
                x, y, z = axis[i], axis[j], axis[m]
                d = 1e9
                for s in range(centres.shape[0]):
                    e = np.sqrt((x - centres[s, 0]) ** 2 + (y - centres[s, 1]) ** 2
                                + (z - centres[s, 2]) ** 2) - radii[s]  # fmt: skip
                    h = max(k - abs(d - e), 0.0) / k
                    d = min(d, e) - h * h * k * 0.25
                for s in range(bumps.shape[0]):
                    e = np.sqrt((x - bumps[s, 0]) ** 2 + (y - bumps[s, 1]) ** 2
                                + (z - bumps[s, 2]) ** 2) - bump_radius  # fmt: skip
                    h = max(0.03 - abs(d - e), 0.0) / 0.03
                    d = min(d, e) - h * h * 0.03 * 0.25
                out[i, j, m] = d
    return out


def make_input(resolution: int = 384) -> RawAsset:
    """The benchmark mesh: marching cubes of a blobby field, with an analytic vertex colour."""
    from skimage.measure import marching_cubes

    from tests.support.analytic_meshes import analytic_color

    rng = np.random.default_rng(3)
    centres = rng.uniform(-0.42, 0.42, (14, 3))
    radii = rng.uniform(0.2, 0.34, 14)
    directions = rng.normal(size=(24, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    owner = rng.integers(0, 14, 24)  # each bump sits on a sphere's surface, so it is attached
    bumps = centres[owner] + directions * radii[owner, None]
    axis = np.linspace(-0.98, 0.98, resolution)
    volume = _blob_volume(axis, centres, radii, bumps, 0.07)
    vertices, faces, _, _ = marching_cubes(volume, 0.0, spacing=(axis[1] - axis[0],) * 3)
    vertices = (vertices + axis[0]).astype(np.float32)
    return RawAsset(vertices, faces, vertex_colors=analytic_color(vertices), name="blob")
