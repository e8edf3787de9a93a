"""Preview: a small RGBA thumbnail of the model, subject centred on a transparent background."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from backend.geometry import preview, tangents


def test_sphere_renders_lit_and_centred(sphere_mesh):
    vertices, faces = sphere_mesh
    normals = tangents.vertex_normals(vertices, faces)
    png = preview.render_png(vertices, faces, normals, size=128)
    image = np.asarray(Image.open(io.BytesIO(png)))
    assert image.shape == (128, 128, 4)
    assert image[64, 64, 3] == 255 and image[0, 0, 3] == 0
    lit = image[..., :3].astype(int).sum(axis=2)[image[..., 3] == 255]
    assert lit.max() - lit.min() > 100  # shaded, not flat


def test_texture_colours_show(sphere_mesh):
    vertices, faces = sphere_mesh
    normals = tangents.vertex_normals(vertices, faces)
    uvs = np.zeros((len(vertices), 2), dtype=np.float32)
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    image = preview.render(vertices, faces, normals, uvs, red, size=64)
    assert image[32, 32, 0] > 80 and image[32, 32, 1] == 0
