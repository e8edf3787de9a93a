"""Built-in ``procedural`` model: text -> an analytic shape, computed step by step. No weights.

It reads shape and colour words from the prompt ("a red torus", "blue capsule"; otherwise a
seeded blob of metaballs), evaluates the signed distance field on a grid one slab per step
(reporting progress and honouring cancel between slabs, as a neural model does per sampling
step), extracts the surface by marching cubes, and gives a colour field the pipeline bakes into a
texture. It is the backend's no-download text model and the workhorse of its tests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import numpy as np

from backend.cancellation import CancelToken
from backend.geometry.raw_asset import RawAsset
from backend.models.base import GenerationRequest, ModelAdapter, ProgressCallback
from shared_protocol.messages import ParameterSchema

Sdf = Callable[[np.ndarray], np.ndarray]  # points (k, 3) -> signed distance (k,), < 0 inside

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.12),
    "orange": (0.95, 0.5, 0.1),
    "yellow": (0.95, 0.85, 0.2),
    "green": (0.2, 0.7, 0.25),
    "blue": (0.15, 0.35, 0.85),
    "purple": (0.55, 0.25, 0.75),
    "pink": (0.95, 0.5, 0.7),
    "white": (0.92, 0.92, 0.9),
    "black": (0.08, 0.08, 0.08),
    "grey": (0.5, 0.5, 0.5),
    "gray": (0.5, 0.5, 0.5),
    "brown": (0.45, 0.28, 0.15),
    "gold": (0.9, 0.72, 0.25),
}


def _sphere(p: np.ndarray) -> np.ndarray:
    return np.linalg.norm(p, axis=1) - 0.8


def _cube(p: np.ndarray) -> np.ndarray:
    q = np.abs(p) - 0.6
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    return outside + np.minimum(q.max(axis=1), 0.0) - 0.1  # rounded edges, radius 0.1


def _torus(p: np.ndarray) -> np.ndarray:
    ring = np.hypot(p[:, 0], p[:, 2]) - 0.6
    return np.hypot(ring, p[:, 1]) - 0.25


def _cylinder(p: np.ndarray) -> np.ndarray:
    d = np.stack([np.hypot(p[:, 0], p[:, 2]) - 0.55, np.abs(p[:, 1]) - 0.75], axis=1)
    return np.minimum(d.max(axis=1), 0.0) + np.linalg.norm(np.maximum(d, 0.0), axis=1)


def _capsule(p: np.ndarray) -> np.ndarray:
    y = np.clip(p[:, 1], -0.45, 0.45)
    return np.linalg.norm(p - np.stack([np.zeros_like(y), y, np.zeros_like(y)], 1), axis=1) - 0.4


def _cone(p: np.ndarray) -> np.ndarray:
    # Intersection of a slanted half-space cone and two caps; a bound, not exact, which MC accepts.
    radius_at_y = 0.6 * (0.8 - p[:, 1]) / 1.6
    side = (np.hypot(p[:, 0], p[:, 2]) - radius_at_y) * 0.9
    return np.maximum(side, np.abs(p[:, 1]) - 0.8)


SHAPES: dict[str, Sdf] = {
    "sphere": _sphere,
    "ball": _sphere,
    "cube": _cube,
    "box": _cube,
    "torus": _torus,
    "donut": _torus,
    "ring": _torus,
    "cylinder": _cylinder,
    "capsule": _capsule,
    "pill": _capsule,
    "cone": _cone,
}


def _metaballs(seed: int) -> Sdf:
    """A smooth union of 5-8 seeded spheres: a blob that differs per seed."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(5, 9))
    centres = rng.uniform(-0.45, 0.45, size=(count, 3))
    radii = rng.uniform(0.22, 0.38, size=count)

    def sdf(p: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(p[:, None, :] - centres[None], axis=2) - radii[None]
        k = 0.15  # smooth-min radius
        return -k * np.log(np.exp(-d / k).sum(axis=1))

    return sdf


def parse_prompt(prompt: str, seed: int) -> tuple[str, Sdf, tuple[float, float, float]]:
    """(shape name, its SDF, base colour) from the prompt's words; unknown words -> a blob."""
    words = re.findall(r"[a-z]+", prompt.lower())
    shape_name = next((w for w in words if w in SHAPES), "blob")
    sdf = SHAPES[shape_name] if shape_name in SHAPES else _metaballs(seed)
    colour_word = next((w for w in words if w in COLOURS), None)
    if colour_word is None:
        digest = hashlib.sha256(f"{prompt}:{seed}".encode()).digest()
        colour = tuple(0.25 + 0.6 * b / 255 for b in digest[:3])
    else:
        colour = COLOURS[colour_word]
    return shape_name, sdf, colour  # type: ignore[return-value]


def colour_field(base: tuple[float, float, float]) -> Callable[[np.ndarray], np.ndarray]:
    """Base colour shaded by height and a soft band pattern, so bakes have something to show."""
    base_array = np.asarray(base, dtype=np.float32)

    def field(points: np.ndarray) -> np.ndarray:
        height = np.clip(points[:, 1:2] * 0.5 + 0.5, 0.0, 1.0)
        bands = 0.5 + 0.5 * np.sin(points[:, 1:2] * 12.0)
        shade = 0.75 + 0.25 * height - 0.12 * bands
        return np.clip(base_array[None] * shade, 0.0, 1.0).astype(np.float32)

    return field


class ProceduralAdapter(ModelAdapter):
    id = "procedural"
    name = "Procedural primitives"
    description = "Text -> analytic shape (sphere, cube, torus, ...) by marching cubes; no weights."
    tasks = ("text",)
    license = "MIT"
    parameters = (
        ParameterSchema("resolution", "int", 96, "Resolution", "Grid cells per side", 16, 512),
        ParameterSchema("steps", "int", 16, "Steps", "Progress steps (grid slabs)", 1, 1024),
    )
    stage_weights = {"field": 0.8, "surface": 0.2}

    def _load(self, device: str, dtype: str) -> None:
        """numpy only: nothing to load."""

    def _generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancelToken
    ) -> RawAsset:
        from skimage.measure import marching_cubes

        resolution = request.parameters["resolution"]
        steps = min(request.parameters["steps"], resolution)
        shape_name, sdf, colour = parse_prompt(request.prompt, request.seed)
        axis = np.linspace(-1.0, 1.0, resolution, dtype=np.float32)
        volume = np.empty((resolution,) * 3, dtype=np.float32)
        yy, zz = np.meshgrid(axis, axis, indexing="ij")
        for step, slab in enumerate(np.array_split(np.arange(resolution), steps)):
            cancel.raise_if_cancelled()
            xs = axis[slab]
            points = np.stack(
                [
                    np.repeat(xs, yy.size),
                    np.tile(yy.ravel(), len(xs)),
                    np.tile(zz.ravel(), len(xs)),
                ],
                axis=1,
            )
            volume[slab] = sdf(points).reshape(len(xs), resolution, resolution)
            progress("field", step + 1, steps, f"{shape_name}: slab {step + 1}/{steps}")
        cancel.raise_if_cancelled()
        progress("surface", 0, 1, "marching cubes")
        spacing = (2.0 / (resolution - 1),) * 3
        vertices, faces, _normals, _values = marching_cubes(volume, 0.0, spacing=spacing)
        vertices = vertices - 1.0  # skimage already winds outward for SDF < 0 inside
        progress("surface", 1, 1, f"{len(faces)} triangles")
        return RawAsset(
            vertices=vertices,
            faces=faces,
            color_field=colour_field(colour),
            roughness=0.6,
            metallic=0.0,
            name=request.prompt.strip() or shape_name,
        )
