"""FlashVDM's octree decode: mini-grids, cells, chunks, and exact mode against the octree."""

from __future__ import annotations

from pathlib import Path

import torch

from backend.models.hunyuan3d.flashvdm import (
    cell_chunks,
    cell_order,
    decode_flashvdm,
    from_mini_grids,
    mini_grids,
)
from backend.models.hunyuan3d.loading import load_shape_models
from backend.models.hunyuan3d.volume import (
    Box,
    decode_hierarchical,
    flashvdm_resolutions,
    grid_axis,
)


def test_mini_grids_are_blocks_of_the_grid_and_round_trip() -> None:
    box = Box(1.0, 7)  # 8 points per side, 2 mini-grids per side of 4
    grids = mini_grids(box, 2, "cpu")
    assert grids.shape == (8, 64, 3)
    axis = grid_axis(box, "cpu")
    # The second mini-grid is the block x < 4, y < 4, z >= 4, "ij" ordered inside.
    assert torch.equal(grids[1, 0], torch.stack([axis[0], axis[0], axis[4]]))
    assert torch.equal(grids[1, 1], torch.stack([axis[0], axis[0], axis[5]]))
    dense = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1)
    assert torch.equal(from_mini_grids(grids[..., 0].reshape(8, -1), 2), dense[..., 0])


def test_cells_group_points_by_position() -> None:
    generator = torch.Generator().manual_seed(1)
    points = torch.rand((500, 3), generator=generator) * 2 - 1
    order, counts = cell_order(points)
    assert sorted(order.tolist()) == list(range(500)) and int(counts.sum()) == 500
    low, high = points.min(dim=0).values, points.max(dim=0).values
    cells = torch.floor((points[order] - low) / (high - low) * 5.999).long()  # of the bounding box
    start = 0
    for count in counts.tolist():  # each group lies in one cell
        assert (cells[start : start + count] == cells[start]).all()
        start += count


def test_cell_chunks_pack_whole_cells_under_the_chunk() -> None:
    assert cell_chunks([3, 4, 2, 10, 1], 8) == [[3, 4], [2], [10], [1]]
    assert cell_chunks([], 8) == []


def test_exact_mode_equals_the_octree_decode(tiny_variant: Path) -> None:
    models = load_shape_models(tiny_variant, "cpu", torch.float32)
    vae = models.vae
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((1, 16, 8), generator=generator)
    with torch.no_grad():
        keys, values = vae.prepare_queries(vae.decode_latents(latents))
        chunks: list[tuple[int, int]] = []
        ours, box = decode_flashvdm(
            lambda p, s: vae.geo_decoder(p, keys, values, s), Box(1.01, 32), 500, "cpu",
            torch.float32, adaptive=False, min_resolution=16,
            on_chunk=lambda done, total: chunks.append((done, total)),
        )
        octree, _ = decode_hierarchical(
            lambda p: vae.geo_decoder(p, keys, values), Box(1.01, 32), 500, "cpu",
            torch.float32, levels=flashvdm_resolutions(32, min_resolution=16),
        )
    assert box.resolution == 30
    torch.testing.assert_close(ours, octree, rtol=1e-5, atol=1e-5)
    assert chunks and chunks[-1][0] == chunks[-1][1]
