"""The built-in procedural model: prompt parsing and the RawAsset it promises."""

from __future__ import annotations

import numpy as np
import pytest

from backend.cancellation import CancelToken
from backend.models.base import GenerationRequest
from backend.models.builtin.procedural import ProceduralAdapter, parse_prompt


def test_prompt_words_pick_shape_and_colour() -> None:
    name, _, colour = parse_prompt("A big RED torus", seed=1)
    assert name == "torus" and colour == (0.85, 0.15, 0.12)
    assert parse_prompt("a whale", seed=1)[0] == "blob"
    assert parse_prompt("a whale", seed=1)[2] != parse_prompt("a whale", seed=2)[2]


def test_procedural_faces_wind_outward() -> None:
    """RawAsset promises counter-clockwise faces seen from outside: positive signed volume."""
    adapter = ProceduralAdapter()
    adapter.load("cpu")
    raw = adapter.generate(
        GenerationRequest(task="text", prompt="a sphere", parameters={"resolution": 32}),
        lambda *args, **kwargs: None,
        CancelToken(),
    )
    corners = raw.vertices[raw.faces]
    volume = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert volume == pytest.approx(4 / 3 * np.pi * 0.8**3, rel=0.05)
