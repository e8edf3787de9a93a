"""The camera set MVDream is conditioned on: orbit views as flattened 4x4 camera-to-world.

MVDream was trained with cameras on the unit sphere looking at the origin, built in the
OpenGL/glTF frame (+Y up; azimuth 0 is the camera on +Z, i.e. in front of an object facing +Z;
azimuth 90 on +X) and then re-expressed in Blender's frame (+Z up) before flattening. Any
elevation and list of azimuths can be asked for; the default four are front, right, back, left
at one elevation, the order multi-view reconstructors take them in.
"""

from __future__ import annotations

import numpy as np

# OpenGL (+Y up) -> Blender (+Z up): (x, y, z) -> (x, -z, y).
GL_TO_BLENDER = np.array(
    [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64
)
DEFAULT_AZIMUTHS = (0.0, 90.0, 180.0, 270.0)


def camera_to_world(elevation_deg: float, azimuth_deg: float) -> np.ndarray:
    """(4, 4) float64 OpenGL-frame camera-to-world of a unit-distance orbit camera."""
    elevation, azimuth = np.radians(elevation_deg), np.radians(azimuth_deg)
    position = np.array([
        np.cos(elevation) * np.sin(azimuth),
        np.sin(elevation),
        np.cos(elevation) * np.cos(azimuth),
    ])
    forward = -position / np.linalg.norm(position)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    matrix = np.eye(4)
    matrix[:3, :3] = np.stack([right, up / np.linalg.norm(up), -forward], axis=1)
    matrix[:3, 3] = position
    return matrix


def camera_embedding_input(
    elevation_deg: float, azimuths_deg: tuple[float, ...] = DEFAULT_AZIMUTHS
) -> np.ndarray:
    """(views, 16) float32: what the UNet's camera MLP reads, one row per view."""
    if not -89.0 <= elevation_deg <= 89.0:
        raise ValueError(f"elevation {elevation_deg} must be within [-89, 89] degrees")
    rows = [(GL_TO_BLENDER @ camera_to_world(elevation_deg, a)).reshape(16)
            for a in azimuths_deg]
    return np.stack(rows).astype(np.float32)


def evenly_spaced(count: int, start_deg: float = 0.0, span_deg: float = 360.0) -> tuple:
    """``count`` azimuths from ``start_deg`` over ``span_deg`` (upstream's ``get_camera``)."""
    step = span_deg / count
    return tuple(start_deg + i * step for i in range(count))
