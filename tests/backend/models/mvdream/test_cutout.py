"""The views' cut-out: the shared module's classical mask, and views kept whole when empty."""

from __future__ import annotations

import numpy as np

from backend.models.common.background import remove_background
from backend.models.mvdream.cutout import cut_out_views


def plain_view(size: int, centre: tuple[float, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A shaded orange blob on a light, slightly noisy background: (rgb uint8, truth bool).

    The blob's top half is pale, 35 RGB units from the background: the shared cut-out keeps it
    (GrabCut from a 28-unit key), a plain 40-unit colour key (mvdream's old own) loses it."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:size, 0:size]
    truth = ((rows - centre[0]) / 0.3) ** 2 + ((cols - centre[1]) / 0.22) ** 2 < size**2
    rgb = np.full((size, size, 3), (232.0, 230.0, 226.0)) + rng.normal(0, 3.0, (size, size, 3))
    shade = 0.55 + 0.45 * rows / size
    rgb[truth] = np.stack([230 * shade, 120 * shade, 40 * shade], -1)[truth]
    rgb[truth & (rows < centre[0])] = (212.0, 210.0, 206.0)
    return np.clip(rgb, 0, 255).astype(np.uint8), truth


def test_views_get_the_shared_classical_mask() -> None:
    scenes = [plain_view(64, (30 + 2 * i, 34 - 3 * i), seed=i) for i in range(4)]
    views = np.stack([rgb for rgb, _ in scenes])
    cutouts, masks, warnings = cut_out_views(views)
    assert warnings == []
    for view, cutout, mask, (_, truth) in zip(views, cutouts, masks, scenes, strict=True):
        shared = remove_background(view, method="classical").rgba
        np.testing.assert_array_equal(cutout, shared)  # one cut-out path, pixel for pixel
        np.testing.assert_array_equal(mask, shared[..., 3] >= 128)
        overlap = (mask & truth).sum() / (mask | truth).sum()
        assert overlap > 0.95


def test_a_view_with_no_plain_background_is_kept_whole() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    subject, _ = plain_view(32, (16, 16), seed=0)
    cutouts, masks, warnings = cut_out_views(np.concatenate([noise, subject[None]]))
    assert masks[0].all() and (cutouts[0][..., 3] == 255).all()
    np.testing.assert_array_equal(cutouts[0][..., :3], noise[0])
    assert len(warnings) == 1 and warnings[0].startswith("view 0")
    assert not masks[1].all()
