"""The torch rasteriser against a brute-force per-pixel reference."""

from __future__ import annotations

import torch

from backend.models.hunyuan3d import paint_raster
from backend.models.hunyuan3d.paint_raster import rasterize


def brute_force(screen: torch.Tensor, faces: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Nearest covering face per pixel centre, by testing every pixel against every face."""
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    best = torch.full((h, w), float("inf"))
    face_of = torch.full((h, w), -1, dtype=torch.int64)
    for index, (i, j, k) in enumerate(faces.tolist()):
        a, b, c = screen[i], screen[j], screen[k]
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        w1 = ((xs - a[0]) * (c[1] - a[1]) - (ys - a[1]) * (c[0] - a[0])) / area
        w2 = ((b[0] - a[0]) * (ys - a[1]) - (b[1] - a[1]) * (xs - a[0])) / area
        w0 = 1 - w1 - w2
        inside = (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
        depth = w0 * a[2] + w1 * b[2] + w2 * c[2]
        closer = inside & (depth < best) & (depth > 0)
        best = torch.where(closer, depth, best)
        face_of = torch.where(closer, index, face_of)
    return face_of


def test_random_overlapping_triangles_match_brute_force(monkeypatch) -> None:
    generator = torch.Generator().manual_seed(0)
    screen = torch.rand(60, 3, generator=generator) * torch.tensor(
        [40.0, 30.0, 5.0]
    ) + torch.tensor([-4.0, -3.0, 0.5])
    faces = torch.randint(0, 60, (25, 3), generator=generator)
    monkeypatch.setattr(paint_raster, "PAIRS_PER_CHUNK", 500)  # force several chunks
    raster = rasterize(screen, faces, 30, 40)
    expected = brute_force(screen, faces, 30, 40)
    agree = (raster.face == expected).float().mean()
    assert agree > 0.995  # ties at shared edges may go either way
    covered = raster.face >= 0
    assert torch.isfinite(raster.depth[covered]).all() and torch.isinf(raster.depth[~covered]).all()
    assert torch.allclose(raster.bary[covered].sum(-1), torch.ones(int(covered.sum())))


def test_interpolation_reproduces_a_linear_attribute() -> None:
    screen = torch.tensor([[1.0, 1.0, 1.0], [30.0, 2.0, 1.0], [5.0, 28.0, 1.0]])
    faces = torch.tensor([[0, 1, 2]])
    raster = rasterize(screen, faces, 32, 32)
    values = raster.interpolate(screen[:, :2], faces)
    rows, cols = torch.nonzero(raster.face >= 0, as_tuple=True)
    centres = torch.stack([cols, rows], 1).float() + 0.5
    assert torch.allclose(values[rows, cols], centres, atol=1e-4)
