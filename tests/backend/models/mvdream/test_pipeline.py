"""Tiny MVDream end to end: prompt -> four views, seeds, cameras, cancel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.cancellation import Cancelled, CancelToken
from backend.models.mvdream.pipeline import MVDreamPipeline
from backend.models.mvdream.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def pipeline(tiny_models, mvdream_dir: Path, tmp_path_factory) -> MVDreamPipeline:
    return MVDreamPipeline(tiny_models, load_tokenizer(mvdream_dir, tmp_path_factory.mktemp("t")))


def test_four_views_with_progress(pipeline: MVDreamPipeline) -> None:
    steps: list[int] = []
    out = pipeline("a teapot", steps=2, image_size=16, seed=1,
                   progress=lambda stage, i, n, *a: steps.append(i))
    assert out.views.shape == (4, 16, 16, 3) and out.views.dtype == np.uint8
    assert out.cameras.shape == (4, 16) and steps == [1, 2]
    again = pipeline("a teapot", steps=2, image_size=16, seed=1)
    np.testing.assert_array_equal(out.views, again.views)
    other = pipeline("a teapot", steps=2, image_size=16, seed=2)
    assert not np.array_equal(out.views, other.views)


def test_prompt_and_cameras_matter(pipeline: MVDreamPipeline) -> None:
    base = pipeline("a teapot", steps=1, image_size=16, seed=0).views
    prompt = pipeline("a horse", steps=1, image_size=16, seed=0).views
    camera = pipeline("a teapot", steps=1, image_size=16, seed=0, elevation=30.0).views
    assert not np.array_equal(base, prompt) and not np.array_equal(base, camera)


def test_other_view_counts(pipeline: MVDreamPipeline) -> None:
    out = pipeline("a teapot", steps=2, image_size=16, azimuths=(0.0, 180.0))
    assert out.views.shape[0] == 2
    pipeline("a teapot", steps=1, image_size=16)  # back to four views


def test_cancel(pipeline: MVDreamPipeline) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        pipeline("a teapot", steps=2, image_size=16, cancel=token)


def test_given_latents_are_used_and_checked(pipeline: MVDreamPipeline) -> None:
    import torch

    noise = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    first = pipeline("a teapot", steps=1, image_size=16, latents=noise, seed=1)
    second = pipeline("a teapot", steps=1, image_size=16, latents=noise, seed=2)
    np.testing.assert_array_equal(first.views, second.views)  # the seed no longer matters
    with pytest.raises(ValueError, match="latents must be"):
        pipeline("a teapot", steps=1, image_size=16, latents=noise[:2])
