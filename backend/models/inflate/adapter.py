"""``inflate``: one image -> a rounded solid from its silhouette, coloured from the picture.

No network and no weights: the object is cut out (alpha where the image has it, else the pixels
that differ from the border colour), its silhouette's distance transform gives a thickness
that grows like a circle's profile away from the outline, and marching cubes closes the solid.
The colour field projects every surface point back onto the picture (front and back share it).
It is the default reconstructor behind the text-to-image bridge until neural image-to-3D
models are installed, and a fast, deterministic image model for tests.
"""

from __future__ import annotations

import numpy as np

from backend.geometry.raw_asset import RawAsset
from backend.models.base import (
    CancelToken,
    GenerationRequest,
    ModelAdapter,
    ProgressCallback,
    resolve_parameters,
)
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

BORDER_TOLERANCE = 40.0  # RGB distance from the border colour that still counts as background


def silhouette(pixels: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 RGBA -> (h, w) bool foreground mask."""
    alpha = pixels[..., 3]
    if alpha.min() < 250:  # the picture carries its own cut-out
        return alpha >= 128
    rgb = pixels[..., :3].astype(np.float32)
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(border, axis=0)
    return np.linalg.norm(rgb - background, axis=-1) > BORDER_TOLERANCE


class InflateAdapter(ModelAdapter):
    id = "inflate"
    name = "Inflate (built-in)"
    description = "Image -> rounded solid from the silhouette, coloured from the picture."
    tasks = ("image",)
    license = "MIT"
    parameters = (
        ParameterSchema("resolution", "int", 96, "Resolution", "grid cells across the image",
                        16, 256),
        ParameterSchema("thickness", "float", 0.35, "Thickness",
                        "depth of the thickest part, relative to the image width", 0.05, 1.0),
    )
    stage_weights = {"silhouette": 0.2, "solid": 0.8}

    def load(self, device: str, dtype: str = "float32") -> None:
        self.device = device  # numpy only

    def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from PIL import Image
        from scipy import ndimage
        from skimage.measure import marching_cubes

        params = resolve_parameters(self.parameters, request.parameters)
        pixels = request.images[0].pixels
        n = params["resolution"]
        small = np.asarray(Image.fromarray(pixels).resize((n, n), Image.Resampling.LANCZOS))
        mask = silhouette(small)
        progress("silhouette", 1, 1, f"{int(mask.sum())} foreground cells")
        cancel.raise_if_cancelled()
        if mask.sum() < 4:
            raise ProtocolError(
                ErrorCode.INVALID_IMAGE,
                "no object found in the image (it is all background)",
                field="body.images",
                hint="use a picture of one object on a plain background, or with transparency",
            )
        distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        radius = distance.max()
        # A circular profile: half-depth sqrt(d (2R - d)) / R reaches 1 at the medial axis.
        depth = np.sqrt(np.clip(distance * (2 * radius - distance), 0, None)) / radius
        half = 0.5 * params["thickness"] * depth  # in units of the image width (2.0 wide)
        depth_cells = n // 2 + 2
        zs = np.linspace(-1.0, 1.0, depth_cells)
        # field > 0 inside: |z| below the local half-thickness (image axes: row, column).
        volume = half[:, :, None] * 2.0 - np.abs(zs)[None, None, :]
        volume[~mask] = -1.0
        volume = np.pad(volume, 1, constant_values=-1.0)
        progress("solid", 1, 2, "marching cubes")
        cancel.raise_if_cancelled()
        spacing = (2.0 / (n - 1), 2.0 / (n - 1), 2.0 / (depth_cells - 1))
        verts, faces, _, _ = marching_cubes(volume, 0.0, spacing=spacing)
        rows, cols, depth_axis = (verts - np.array(spacing)).T
        vertices = np.stack([cols - 1.0, 1.0 - rows, depth_axis - 1.0], axis=1)
        faces = _outward(vertices, faces)
        progress("solid", 2, 2, f"{len(faces)} triangles")
        return RawAsset(
            vertices=vertices.astype(np.float32),
            faces=faces,
            color_field=_picture_field(pixels),
            name=f"inflate-{request.seed}",
        )


def _outward(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum()
    return faces[:, ::-1].copy() if volume < 0 else faces


def _picture_field(pixels: np.ndarray):
    """points (k, 3) -> (k, 3) sRGB in [0, 1]: the picture's colour straight along -Z."""
    rgb = pixels[..., :3].astype(np.float32) / 255.0
    height, width = rgb.shape[:2]

    def colour(points: np.ndarray) -> np.ndarray:
        cols = np.clip(np.rint((points[:, 0] + 1.0) / 2.0 * (width - 1)), 0, width - 1)
        rows = np.clip(np.rint((1.0 - points[:, 1]) / 2.0 * (height - 1)), 0, height - 1)
        return rgb[rows.astype(int), cols.astype(int)]

    return colour
