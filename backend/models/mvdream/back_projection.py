"""Colour a reconstructed mesh from the generated views: the views and their fitted cameras.

Each view's camera orbits the origin in the backend frame (+Y up, the subject facing +Z;
azimuth 0 on +Z, 90 on +X, elevation up from the horizon), so a surface point is seen by a
view at (p . right, p . up) in its image plane. The generator's field of view and framing are
not known exactly, so each view's placement (one scale, two offsets) is fitted by matching the
mesh's projected extent to the subject's cut-out box in that view. The views go to the geometry
pipeline as ``PaintedViews`` (the cut-out as alpha), whose bake projects them with a visibility
test (a concave region takes no colour from a view that cannot see it), view-angle weights and
a fill of the points no view sees (``backend.geometry.views``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.geometry.raw_asset import PaintedViews, orthographic_camera


@dataclass(frozen=True)
class ViewPlacement:
    """Orthographic placement of one view: pixel = centre + scale * (x, -y) in its plane."""

    direction: np.ndarray  # (3,) unit vector from the origin to the camera
    right: np.ndarray  # (3,)
    up: np.ndarray  # (3,)
    scale: float
    centre_col: float
    centre_row: float
    plane_centre: np.ndarray  # (2,) mesh-extent centre in plane coordinates


def camera_axes(elevation_deg: float, azimuth_deg: float) -> tuple[np.ndarray, ...]:
    """(direction, right, up) unit vectors of an orbit camera in the backend frame."""
    e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
    direction = np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])
    right = np.cross(-direction, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, -direction)
    return direction, right, up / np.linalg.norm(up)


def fit_placement(
    vertices: np.ndarray, mask: np.ndarray, elevation_deg: float, azimuth_deg: float
) -> ViewPlacement:
    """Place ``vertices`` (n, 3) in the view whose cut-out is ``mask`` (h, w) bool."""
    direction, right, up = camera_axes(elevation_deg, azimuth_deg)
    plane = np.stack([vertices @ right, vertices @ up], axis=1)
    low, high = plane.min(axis=0), plane.max(axis=0)
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        rows, cols = np.array([0, mask.shape[0] - 1]), np.array([0, mask.shape[1] - 1])
    extent_px = np.array([cols.max() - cols.min() + 1, rows.max() - rows.min() + 1], float)
    extent = np.maximum(high - low, 1e-6)
    scale = float(np.mean(extent_px / extent))
    return ViewPlacement(
        direction, right, up, scale,
        centre_col=(cols.min() + cols.max()) / 2.0,
        centre_row=(rows.min() + rows.max()) / 2.0,
        plane_centre=(low + high) / 2.0,
    )


def placement_camera(place: ViewPlacement) -> np.ndarray:
    """The (3, 4) ``PaintedViews`` camera of a fitted placement (pixel centres at +0.5)."""
    centre = place.plane_centre[0] * place.right + place.plane_centre[1] * place.up
    rotation = np.stack([place.right, place.up, place.direction])
    return orthographic_camera(
        rotation, centre, place.scale, (place.centre_col + 0.5, place.centre_row + 0.5)
    )


def painted_views(
    vertices: np.ndarray,
    views: np.ndarray,
    masks: np.ndarray,
    elevation_deg: float,
    azimuths_deg: tuple[float, ...],
) -> PaintedViews:
    """``views`` (n, h, w, 3) uint8 with their cut-out ``masks`` (n, h, w) bool as alpha, and
    cameras fitted to ``vertices`` (k, 3); every view counts alike."""
    cameras = [
        placement_camera(fit_placement(vertices, mask, elevation_deg, azimuth))
        for mask, azimuth in zip(masks, azimuths_deg, strict=True)
    ]
    alpha = np.where(masks, 255, 0).astype(np.uint8)[..., None]
    return PaintedViews(
        np.concatenate([views, alpha], axis=-1), np.stack(cameras), np.ones(len(cameras))
    )
