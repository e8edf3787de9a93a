"""Preview: a small RGBA thumbnail of the model, subject centred on a transparent background."""

from __future__ import annotations

import io

import numpy as np
import pytest
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


def test_a_device_job_draws_its_preview_beside_the_bake(monkeypatch):
    """On the torch path the preview's raster and light run on a second thread while the bake
    waits for its device, and its colour and PNG beside the export: the bytes render_png
    gives for the same mesh and map."""
    import threading

    pytest.importorskip("torch")
    from backend.geometry.pipeline import PipelineOptions, run_pipeline
    from backend.geometry.raw_asset import RawAsset
    from tests.support.analytic_meshes import analytic_color, marching_cubes_mesh, sphere_field

    seen = {}
    draw, finish = preview.draw, preview.finish

    def drawn(*args):
        seen["draw"] = (threading.current_thread() is threading.main_thread(), args)
        return draw(*args)

    def finished(drawing, base_color):
        seen["finish"] = (threading.current_thread() is threading.main_thread(), base_color)
        return finish(drawing, base_color)

    monkeypatch.setattr(preview, "draw", drawn)
    monkeypatch.setattr(preview, "finish", finished)
    vertices, faces = marching_cubes_mesh(sphere_field, 40)  # small: CPU torch decimates
    raw = RawAsset(vertices, faces, vertex_colors=analytic_color(vertices))
    result = run_pipeline(raw, PipelineOptions(target_faces=1000, texture_size=256,
                                               geometry_path="torch", preview_size=96))  # fmt: skip
    (on_main, args), (finish_on_main, base_color) = seen["draw"], seen["finish"]
    assert not on_main and not finish_on_main
    placed, mesh_faces, normals, uvs, size = args
    assert size == 96 and len(mesh_faces) == result.faces
    expected = preview.render_png(placed, mesh_faces, normals, uvs, base_color, size)
    assert result.preview == expected
    assert len(np.unique(preview.render(placed, mesh_faces, normals, uvs, base_color, 96)
                         .reshape(-1, 4), axis=0)) > 50  # fmt: skip
