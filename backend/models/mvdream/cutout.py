"""The generated views' subjects, cut out through the shared background module.

MVDream draws its views on a plain background, so the classical cut-out of
:mod:`backend.models.common.background` (border colour key, GrabCut, cleanup; no weights, no
network) is the right one: a segmentation network would cost seconds per view for nothing.
The reconstructor then receives RGBA cut-outs, and its own ``background="auto"`` keeps their
alpha as the mask, so the views are cut out once and the same way as any photo with a plain
background.
"""

from __future__ import annotations

import numpy as np

from backend.models.common.background import remove_background
from shared_protocol.errors import ErrorCode, ProtocolError

MASK_CUTOFF = 128  # alpha at or above this is subject (for the back-projection's masks)


def cut_out_views(views: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """views (n, h, w, 3) uint8 -> RGBA cut-outs (h, w, 4) uint8, masks (n, h, w) bool, warnings.

    A view in which no subject stands out from the background is kept whole (opaque), with a
    warning: the reconstructor still gets four views, and the texture still comes from it."""
    cutouts: list[np.ndarray] = []
    warnings: list[str] = []
    for index, view in enumerate(views):
        try:
            rgba = remove_background(view, method="classical").rgba
        except ProtocolError as error:
            if error.code != ErrorCode.INVALID_IMAGE:
                raise
            rgba = np.concatenate([view, np.full((*view.shape[:2], 1), 255, np.uint8)], axis=-1)
            warnings.append(f"view {index}: no subject stands out from its background; kept whole")
        cutouts.append(rgba)
    masks = np.stack([c[..., 3] >= MASK_CUTOFF for c in cutouts])
    return cutouts, masks, warnings
