"""The benchmark's standard inputs: prompts, images and meshes of our own, made by this code.

Nothing is downloaded or read from disk, so every install benches the same inputs: the images
are drawn with Pillow, the meshes built from closed-form shapes (a UV sphere; the same sphere
with a hidden inner shell, which the pipeline's inner-shell removal must find).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from shared_protocol.messages import ImageInput, MeshInput

PROMPTS = {
    "stool": "a small wooden stool",
    "mushroom": "a red mushroom with white spots",
    "lantern": "a stone garden lantern",
}
IMAGE_SIZE = 256


@dataclass(frozen=True)
class BenchInput:
    """One input of a task: a name for the table, and the request fields it fills."""

    name: str
    task: str
    prompt: str = ""
    images: tuple[ImageInput, ...] = ()
    mesh: MeshInput | None = None


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def disc_image() -> bytes:
    """An orange disc, lit from the upper left, on white: a round object's photo."""
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float64)
    centre, radius = IMAGE_SIZE / 2, IMAGE_SIZE * 0.36
    r2 = ((x - centre) ** 2 + (y - centre) ** 2) / radius**2
    inside = r2 < 1.0
    z = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    light = np.clip(
        0.35 + 0.65 * (z * 0.8 - (x - centre) / radius * 0.3 - (y - centre) / radius * 0.3),
        0.0,
        1.0,
    )
    rgb = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 255.0)
    rgb[inside] = np.outer(light[inside], [235.0, 130.0, 40.0])
    return _png(Image.fromarray(rgb.astype(np.uint8)))


def star_image() -> bytes:
    """A green five-pointed star with a dark outline on white: a flat, spiky silhouette."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), "white")
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 0.42, 0.18) * IMAGE_SIZE
    points = [
        (IMAGE_SIZE / 2 + r * np.cos(a), IMAGE_SIZE / 2 - r * np.sin(a))
        for r, a in zip(radii, angles, strict=True)
    ]
    ImageDraw.Draw(image).polygon(points, fill=(60, 170, 80), outline=(20, 50, 25), width=3)
    return _png(image)


def uv_sphere(rings: int, radius: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A closed UV sphere: vertices (n, 3) float32, faces (4 rings^2 - 4 rings, 3) int64."""
    segments = 2 * rings
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0.0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    body = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0.0, 1.0, 0.0]], body, [[0.0, -1.0, 0.0]]]) * radius
    bottom = len(vertices) - 1
    j = np.arange(segments)
    k = (j + 1) % segments
    faces = [np.stack([np.zeros(segments, int), 1 + k, 1 + j], 1)]
    for i in range(rings - 2):
        a, b = 1 + i * segments + j, 1 + i * segments + k
        faces += [np.stack([a, b, b + segments], 1), np.stack([a, b + segments, a + segments], 1)]
    last = 1 + (rings - 2) * segments
    faces.append(np.stack([np.full(segments, bottom), last + j, last + k], 1))
    return vertices.astype(np.float32), np.concatenate(faces).astype(np.int64)


def _glb(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    import trimesh

    colors = np.clip((vertices * 0.5 + 0.5) * 255, 0, 255).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False)
    return mesh.export(file_type="glb")


def sphere_mesh() -> bytes:
    """A 20k-face sphere as GLB."""
    return _glb(*uv_sphere(72))


def nested_shells_mesh() -> bytes:
    """The sphere with a second, smaller sphere inside it that no outside view sees."""
    outer_v, outer_f = uv_sphere(72)
    inner_v, inner_f = uv_sphere(24, 0.5)
    vertices = np.concatenate([outer_v, inner_v])
    faces = np.concatenate([outer_f, inner_f + len(outer_v)])
    return _glb(vertices, faces)


def standard_inputs(task: str) -> list[BenchInput]:
    """Every standard input of ``task`` (text, image, optimize); [] for tasks we have none for."""
    if task == "text":
        return [BenchInput(name, task, prompt=text) for name, text in PROMPTS.items()]
    if task == "image":
        return [
            BenchInput("disc", task, images=(ImageInput(disc_image()),)),
            BenchInput("star", task, images=(ImageInput(star_image()),)),
        ]
    if task == "optimize":
        return [
            BenchInput("sphere", task, mesh=MeshInput(sphere_mesh(), name="sphere")),
            BenchInput("nested", task, mesh=MeshInput(nested_shells_mesh(), name="nested")),
        ]
    return []
