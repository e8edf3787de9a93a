"""Built-in ``inflate`` model: one image -> a puffy, watertight, textured body. No weights.

The embedded default for when no neural model is installed. It takes the subject from the
shared cut-out (the `background` parameter), measures each inside pixel's distance to
the outline, and inflates the silhouette into a body whose cross-section is round at the rim and
full in the middle (a disc becomes a flattened sphere): the surface is the zero level set of
``F = z^2 - g(x, y)``, where g grows like the distance inside and falls like it outside, so F is
smooth across the outline and marching cubes closes the body with no seam. Front and back are
coloured from the image through a colour field (the pipeline bakes it into a texture), with the
subject's colours bled past its outline so the rim never picks up background.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import (
    GenerationRequest,
    ModelAdapter,
    ProgressCallback,
)
from backend.models.common.background_choice import BACKGROUND_PARAMETER
from shared_protocol.errors import ErrorCode, ProtocolError
from shared_protocol.messages import ParameterSchema

ALPHA_CUTOFF = 128  # alpha at or above this is subject
OPAQUE_ALPHA = 250  # an image whose alpha never drops below this has no usable alpha
KEY_DISTANCE = 40.0  # RGB distance from the border colour that counts as subject
MIN_SUBJECT_PIXELS = 64


class InflateAdapter(ModelAdapter):
    id = "inflate"
    name = "Inflate (built-in)"
    description = (
        "Image -> puffy textured body from the subject's silhouette; for icons, stickers and "
        "cut-outs. No download, no GPU."
    )
    tasks = ("image",)
    license = "MIT"
    vram_mb = 0
    parameters = (
        ParameterSchema(
            "thickness", "float", 0.6, "Thickness",
            "Half-thickness of the body as a share of its widest inscribed circle", 0.1, 1.5,
        ),
        ParameterSchema(
            "resolution", "int", 160, "Resolution", "Grid cells along the longer side", 32, 384
        ),
        ParameterSchema(
            "smoothing", "float", 1.5, "Smoothing", "Outline smoothing in grid cells", 0.0, 6.0
        ),
        BACKGROUND_PARAMETER,
    )  # fmt: skip
    stage_weights = {"mask": 0.1, "inflate": 0.2, "surface": 0.6, "colour": 0.1}

    def _load(self, device: str, dtype: str) -> None:
        """numpy only: nothing to load."""

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        params = request.parameters
        pixels = request.images[0].pixels  # cut out by the template: alpha is the subject
        progress("mask", 0, 1, "finding the subject")
        mask = subject_mask(pixels, "alpha" if params["background"] != "none" else "auto")
        progress("mask", 1, 1, f"subject: {int(mask.sum())} pixels")
        cancel.raise_if_cancelled()
        progress("inflate", 0, 1, "inflating the silhouette")
        grid, spacing, origin = inflation_field(
            mask, params["resolution"], params["thickness"], params["smoothing"]
        )
        progress("inflate", 1, 1, f"field {grid.shape[0]}x{grid.shape[1]}x{grid.shape[2]}")
        cancel.raise_if_cancelled()
        vertices, faces = _surface(grid, spacing, origin, progress)
        cancel.raise_if_cancelled()
        progress("colour", 0, 1, "colouring front and back")
        colour = image_color_field(pixels, mask)
        result = RawAsset(
            vertices=vertices,
            faces=faces,
            vertex_colors=colour(vertices),
            color_field=colour,
            roughness=0.55,
            metallic=0.0,
            name="inflated",
        )
        progress("colour", 1, 1, f"{len(faces)} triangles")
        return result


def subject_mask(pixels: np.ndarray, background: str = "auto") -> np.ndarray:
    """(h, w) bool: the subject in an RGBA image (h, w, 4) uint8.

    ``background``: "alpha" uses the alpha channel, "color_key" keys away the colour of the
    image border, "auto" picks alpha when the image has transparent pixels. The largest piece is
    kept and its holes filled; an image with no subject is an INVALID_IMAGE error.
    """
    alpha = pixels[..., 3]
    use_alpha = background == "alpha" or (background == "auto" and alpha.min() < OPAQUE_ALPHA)
    if use_alpha:
        mask = alpha >= ALPHA_CUTOFF
    else:
        rgb = pixels[..., :3].astype(np.float32)
        border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
        key = np.median(border, axis=0)
        mask = np.linalg.norm(rgb - key, axis=2) > KEY_DISTANCE
        mask = ndimage.binary_opening(mask, iterations=1)
    labels, count = ndimage.label(mask)
    if count == 0 or mask.sum() < MIN_SUBJECT_PIXELS:
        raise ProtocolError(
            ErrorCode.INVALID_IMAGE,
            "no subject found in the image",
            field="images",
            hint="Use an image with a transparent background, or a subject on a plain one.",
        )
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    return ndimage.binary_fill_holes(labels == largest)


def inflation_field(
    mask: np.ndarray, resolution: int, thickness: float, smoothing: float
) -> tuple[np.ndarray, float, np.ndarray]:
    """The inflated body as a volume: F < 0 inside.

    mask (h, w) bool. Returns grid (nx, ny, nz) float32 indexed (x right, y up, z front),
    spacing (world units per cell; the mask's longer side is 1 unit) and origin (3,) of cell 0.
    """
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    zoomed = ndimage.zoom(crop.astype(np.float32), resolution / max(crop.shape), order=1) >= 0.5
    spacing = 1.0 / max(zoomed.shape)  # the subject's longer side is one unit
    pad = 4 + int(np.ceil(2 * smoothing))
    small = np.pad(zoomed, pad)
    inside = ndimage.distance_transform_edt(small)
    outside = ndimage.distance_transform_edt(~small)
    radius = max(float(inside.max()), 1.0)
    height = thickness * radius
    unit = np.minimum(inside / radius, 1.0)
    # g = h(d)^2 inside (h: a quarter-circle profile), continued linearly outside with the same
    # slope, so F = z^2 - g is smooth across the outline.
    g = np.where(small, height**2 * unit * (2.0 - unit), -2.0 * height**2 / radius * outside)
    if smoothing > 0:
        g = ndimage.gaussian_filter(g, smoothing)
    depth = int(np.ceil(np.sqrt(max(g.max(), 1.0)))) + 3
    z = np.arange(-depth, depth + 1, dtype=np.float32)
    # Image rows run down; world y runs up. Grid index order: (x = column, y = flipped row, z).
    g_xy = np.ascontiguousarray(g[::-1].T, dtype=np.float32)
    grid = z[None, None, :] ** 2 - g_xy[:, :, None]
    # Cell centres: the subject's crop is centred on the world origin.
    origin = np.array(
        [
            (0.5 - pad - zoomed.shape[1] / 2) * spacing,
            (0.5 - pad - zoomed.shape[0] / 2) * spacing,
            -depth * spacing,
        ]
    )
    # Scale F so it is about a distance in cells near the surface (keeps marching cubes honest).
    return (grid / (2.0 * max(height, 1.0))).astype(np.float32), spacing, origin


def _surface(
    grid: np.ndarray, spacing: float, origin: np.ndarray, progress: ProgressCallback
) -> tuple[np.ndarray, np.ndarray]:
    from skimage.measure import marching_cubes

    progress("surface", 0, 1, "marching cubes")
    vertices, faces, _normals, _values = marching_cubes(grid, 0.0, spacing=(spacing,) * 3)
    vertices = vertices + origin
    progress("surface", 1, 1, f"{len(faces)} triangles")
    return vertices.astype(np.float32), faces.astype(np.int64)


def image_color_field(pixels: np.ndarray, mask: np.ndarray):
    """A colour field painting the image onto front and back (and across the rim).

    pixels (h, w, 4) uint8, mask (h, w) subject. World (x, y) maps back to the image the way
    :func:`inflation_field` placed it (subject crop centred, its longer side one unit). Colours
    outside the subject are its nearest inside colour.
    """
    rows, cols = np.nonzero(mask)
    top, left = rows.min(), cols.min()
    crop_h, crop_w = rows.max() - top + 1, cols.max() - left + 1
    solid = mask & (pixels[..., 3] >= OPAQUE_ALPHA) if pixels[..., 3].min() < OPAQUE_ALPHA else mask
    if solid.sum() < MIN_SUBJECT_PIXELS:
        solid = mask
    nearest = ndimage.distance_transform_edt(~solid, return_distances=False, return_indices=True)
    bled = pixels[..., :3][nearest[0], nearest[1]].astype(np.float32) / 255.0
    size = float(max(crop_h, crop_w))

    def colour(points: np.ndarray) -> np.ndarray:
        col = left + crop_w / 2 + points[:, 0] * size - 0.5
        row = top + crop_h / 2 - points[:, 1] * size - 0.5
        return _bilinear(bled, row, col)

    return colour


def _bilinear(image: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Clamped bilinear lookup of image (h, w, c) at float pixel coords (k,) -> (k, c)."""
    h, w = image.shape[:2]
    row = np.clip(row, 0, h - 1)
    col = np.clip(col, 0, w - 1)
    r0 = np.minimum(np.floor(row).astype(np.int64), h - 2 if h > 1 else 0)
    c0 = np.minimum(np.floor(col).astype(np.int64), w - 2 if w > 1 else 0)
    fr, fc = (row - r0)[:, None], (col - c0)[:, None]
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    top = image[r0, c0] * (1 - fc) + image[r0, c1] * fc
    bottom = image[r1, c0] * (1 - fc) + image[r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)
