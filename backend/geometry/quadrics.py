"""Plane quadrics (Garland-Heckbert) and the best placement of a merged vertex, compiled.

A quadric is the symmetric 4x4 matrix [A b; b^T c] of summed squared plane distances, stored as
ten coefficients in the order a00 a01 a02 b0 a11 a12 b1 a22 b2 c. ``placement`` solves for the
point of least error (or picks an endpoint when asked, or when the system is ill-posed) and
``edge_cost`` is the error of collapsing an edge there. Used by qem.py.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def quadric_cost(q, x, y, z):
    return (
        q[0] * x * x + 2 * q[1] * x * y + 2 * q[2] * x * z + 2 * q[3] * x
        + q[4] * y * y + 2 * q[5] * y * z + 2 * q[6] * y
        + q[7] * z * z + 2 * q[8] * z + q[9]
    )  # fmt: skip


@numba.njit(cache=True)
def placement(q, pu, pv, endpoint, pinned_u, pinned_v):
    """Best position for the merged vertex and its cost; which=0 u, 1 v, 2 elsewhere."""
    return place(q, pu[0], pu[1], pu[2], pv[0], pv[1], pv[2], endpoint, pinned_u, pinned_v)


@numba.njit(cache=True, _nrt=False)
def place(q, ux, uy, uz, vx, vy, vz, endpoint, pinned_u, pinned_v):
    """:func:`placement` on coordinates. Hot loops call this one: an array view per endpoint
    (``pos[u]``) costs an atomic reference count each, and on the shared ``pos`` those atomics
    were a fifth of the decimator's time and bounced a cache line between the slab threads.
    Not inlined in numba's IR: that doubled the decimator's first compile (51 -> 100 s) for no
    measurable speed; LLVM inlines it anyway. Compiled without reference counting (``_nrt``
    off: it allocates nothing), so its ``q`` argument costs no atomics either."""
    if pinned_u and not pinned_v:
        return ux, uy, uz, quadric_cost(q, ux, uy, uz), 0
    if pinned_v and not pinned_u:
        return vx, vy, vz, quadric_cost(q, vx, vy, vz), 1
    if not endpoint:
        a00, a01, a02, a11, a12, a22 = q[0], q[1], q[2], q[4], q[5], q[7]
        det = (
            a00 * (a11 * a22 - a12 * a12) - a01 * (a01 * a22 - a12 * a02)
            + a02 * (a01 * a12 - a11 * a02)
        )  # fmt: skip
        scale = (a00 + a11 + a22) ** 3
        if abs(det) > 1e-9 * abs(scale) and scale != 0.0:
            b0, b1, b2 = -q[3], -q[6], -q[8]
            i00 = a11 * a22 - a12 * a12
            i01 = a02 * a12 - a01 * a22
            i02 = a01 * a12 - a02 * a11
            i11 = a00 * a22 - a02 * a02
            i12 = a01 * a02 - a00 * a12
            i22 = a00 * a11 - a01 * a01
            x = (i00 * b0 + i01 * b1 + i02 * b2) / det
            y = (i01 * b0 + i11 * b1 + i12 * b2) / det
            z = (i02 * b0 + i12 * b1 + i22 * b2) / det
            # The optimum must stay near the edge; far away means an ill-posed quadric.
            dx, dy, dz = ux - vx, uy - vy, uz - vz
            span = np.sqrt(dx * dx + dy * dy + dz * dz)
            mx, my, mz = (ux + vx) / 2, (uy + vy) / 2, (uz + vz) / 2
            if (x - mx) ** 2 + (y - my) ** 2 + (z - mz) ** 2 <= (2.0 * span) ** 2:
                return x, y, z, quadric_cost(q, x, y, z), 2
    cu = quadric_cost(q, ux, uy, uz)
    cv = quadric_cost(q, vx, vy, vz)
    if not endpoint:
        mx, my, mz = (ux + vx) / 2, (uy + vy) / 2, (uz + vz) / 2
        cm = quadric_cost(q, mx, my, mz)
        if cm < cu and cm < cv:
            return mx, my, mz, cm, 2
    if cu <= cv:
        return ux, uy, uz, cu, 0
    return vx, vy, vz, cv, 1


@numba.njit(cache=True, _nrt=False, forceinline=True)
def edge_cost(u, w, pos, quadrics, border, endpoint, q):
    """Error of collapsing edge (u, w) at its best placement; ``q`` (10,) is scratch.
    Inlined by LLVM, not by numba (whose inlining binds each array argument to a new variable:
    an atomic reference count on the shared pos, border and q per call), and compiled without
    reference counting: the sweeps' hottest loop evaluates it ~10 M times."""
    for t in range(10):
        q[t] = quadrics[u, t] + quadrics[w, t]
    pin_u = border[u] and not border[w]
    pin_w = border[w] and not border[u]
    return place(
        q, pos[u, 0], pos[u, 1], pos[u, 2], pos[w, 0], pos[w, 1], pos[w, 2], endpoint, pin_u,
        pin_w,
    )[3]


@numba.njit(cache=True, inline="always")
def add_plane(quadrics, w, a, b, c, d, weight):
    quadrics[w, 0] += weight * a * a
    quadrics[w, 1] += weight * a * b
    quadrics[w, 2] += weight * a * c
    quadrics[w, 3] += weight * a * d
    quadrics[w, 4] += weight * b * b
    quadrics[w, 5] += weight * b * c
    quadrics[w, 6] += weight * b * d
    quadrics[w, 7] += weight * c * c
    quadrics[w, 8] += weight * c * d
    quadrics[w, 9] += weight * d * d
