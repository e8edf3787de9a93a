"""The contract between the models and the geometry pipeline: what a model hands over.

A model returns a :class:`RawAsset`: a (usually dense, marching-cubes) triangle mesh in the
backend's frame (glTF: +Y up, the subject facing +Z, metres-ish units, any origin), with colour
either per vertex, as an incoming UV texture, as a field the pipeline can query at any 3D
point (what triplane models have), or as painted views: images of the subject with the cameras
that took them (what multi-view texturing models make), which the bake projects onto the
surface. The pipeline (clean -> decimate -> UV -> bake -> export) turns it into the game-ready
asset; it is the only place that reduces, unwraps and bakes. Arrays only, no torch: a field that
runs on the GPU wraps its own conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# points (k, 3) float32 -> values (k, c) float32; called in chunks by the baker.
PointField = Callable[[np.ndarray], np.ndarray]


@dataclass
class PaintedViews:
    """Images of the subject and the orthographic cameras that took them.

    images : (v, h, w, 3|4) uint8 sRGB; where an alpha channel is 0 the view has no colour
        (a cut-out's background)
    cameras : (v, 3, 4) float64 affine maps from a world point (x, y, z, 1) to (column, row,
        depth): pixel centres at +0.5, row 0 at the top, depth in world units growing away from
        the camera (see :func:`orthographic_camera`)
    weights : (v,) float64 how much each view counts where several see a point (1 = fully)

    ``backend.geometry.views`` evaluates them at surface points (visibility, view angle,
    weights); the cameras are in the same frame as the mesh they come with.
    """

    images: np.ndarray
    cameras: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.cameras = np.ascontiguousarray(self.cameras, dtype=np.float64)
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float64)
        count = len(self.images)
        if self.images.ndim != 4 or self.images.shape[3] not in (3, 4):
            raise ValueError(f"images must be (v, h, w, 3|4), got {self.images.shape}")
        if self.cameras.shape != (count, 3, 4):
            raise ValueError(f"cameras must be ({count}, 3, 4), got {self.cameras.shape}")
        if self.weights.shape != (count,) or not (self.weights >= 0).all():
            raise ValueError(f"weights must be ({count},) and >= 0, got {self.weights}")


def orthographic_camera(
    rotation: np.ndarray,
    centre: np.ndarray,
    pixels_per_unit: float,
    principal: tuple[float, float],
) -> np.ndarray:
    """A (3, 4) camera of :class:`PaintedViews`.

    rotation (3, 3): rows are the image's right and up and the direction towards the camera,
    in world coordinates (orthonormal); ``centre`` (3,) is the world point drawn at pixel
    ``principal`` (column, row); ``pixels_per_unit`` pixels per world unit.
    """
    right, up, backward = np.asarray(rotation, dtype=np.float64)
    centre = np.asarray(centre, dtype=np.float64)
    column, row = principal
    return np.array(
        [
            [*(pixels_per_unit * right), column - pixels_per_unit * right @ centre],
            [*(-pixels_per_unit * up), row + pixels_per_unit * up @ centre],
            [*(-backward), backward @ centre],
        ]
    )


@dataclass
class RawAsset:
    """A model's raw output.

    vertices : (n, 3) float32, +Y up, facing +Z
    faces : (m, 3) int32/int64, counter-clockwise seen from outside
    vertex_colors : (n, 3|4) float32 in [0, 1], sRGB, or None
    uvs : (n, 2) float32 incoming UVs (glTF convention, v down from top-left), or None
    texture : (h, w, 3|4) uint8 sRGB base colour for ``uvs``, or None
    color_field : points -> (k, 3) sRGB colour in [0, 1], queried at texel surface points
    views : painted images with their cameras, projected at texel surface points (when given,
        the base colour comes from them alone)
    material_field : points -> (k, 2) (roughness, metallic) in [0, 1]
    alpha_field : points -> (k, 1) opacity in [0, 1]; when given, the base colour map gets an
        alpha channel and the glTF material blends (``alphaMode`` BLEND)
    extra_files : other result files the model made, file name -> content (e.g.
        ``"gaussians.ply"``, a 3D Gaussian Splatting file); the geometry pipeline leaves them as
        they are, for the job to store beside the asset
    extra_file_frames : for an extra file with coordinates, name -> (4, 4) affine map from the
        file's coordinates to this asset's frame (the job composes it with the pipeline's
        placement, so a client can put the file's content on the finished asset)
    """

    vertices: np.ndarray
    faces: np.ndarray
    vertex_colors: np.ndarray | None = None
    uvs: np.ndarray | None = None
    texture: np.ndarray | None = None
    color_field: PointField | None = None
    views: PaintedViews | None = None
    material_field: PointField | None = None
    alpha_field: PointField | None = None
    roughness: float = 0.8
    metallic: float = 0.0
    name: str = ""
    warnings: list[str] = field(default_factory=list)
    extra_files: dict[str, bytes] = field(default_factory=dict)
    extra_file_frames: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64)
        # One dtype per array, so the compiled kernels see one signature (warmup.py covers it).
        if self.vertex_colors is not None:
            self.vertex_colors = np.ascontiguousarray(self.vertex_colors, dtype=np.float32)
        if self.uvs is not None:
            self.uvs = np.ascontiguousarray(self.uvs, dtype=np.float32)
        if self.texture is not None:
            self.texture = np.ascontiguousarray(self.texture, dtype=np.uint8)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (n, 3), got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (m, 3), got {self.faces.shape}")
        if len(self.faces) and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError("faces index vertices that do not exist")
        for name in ("vertex_colors", "uvs"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.vertices):
                raise ValueError(f"{name} has {len(values)} rows for {len(self.vertices)} vertices")
