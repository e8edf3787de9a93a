"""Our MVDream against upstream's numbers (tests/data/mvdream/tiny_reference.npz).

The reference was produced by running the upstream ``mvdream`` package (bytedance/MVDream,
torch 2.13 CPU, open_clip 2.7.0 as pinned upstream) on the tiny configuration with the same
seeded weights our checkpoint writer produces; see tests/data/mvdream/README.md.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.models.mvdream.camera import camera_embedding_input, evenly_spaced
from backend.models.mvdream.config import TINY
from backend.models.mvdream.pipeline import MVDreamPipeline
from backend.models.mvdream.sampler import DDIMSchedule, alphas_cumprod

from .conftest import DATA

RELATIVE = 1e-4  # max |ours - upstream| / max |upstream|


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return dict(np.load(DATA / "tiny_reference.npz"))


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_cameras(reference) -> None:
    np.testing.assert_allclose(camera_embedding_input(15.0), reference["camera_elev15"],
                               atol=1e-6)
    np.testing.assert_allclose(camera_embedding_input(0.0, evenly_spaced(4, 90.0)),
                               reference["camera_elev0_start90"], atol=1e-6)


def test_unet_output(tiny_models, reference) -> None:
    cameras = torch.from_numpy(reference["camera_elev15"]).repeat(2, 1)
    with torch.no_grad():
        out = tiny_models.unet(torch.from_numpy(reference["unet_x"]),
                               torch.from_numpy(reference["unet_t"]),
                               torch.from_numpy(reference["unet_context"]),
                               class_labels=cameras).sample
    assert _relative(out.numpy(), reference["unet_out"]) < RELATIVE


def test_unet_views_attend_to_each_other(tiny_models, reference) -> None:
    # Changing view 3 must change view 0's output (cross-view attention), and not the
    # other sample's views.
    x = torch.from_numpy(reference["unet_x"]).clone()
    args = (torch.from_numpy(reference["unet_t"]), torch.from_numpy(reference["unet_context"]))
    cameras = torch.from_numpy(reference["camera_elev15"]).repeat(2, 1)
    with torch.no_grad():
        base = tiny_models.unet(x, *args, class_labels=cameras).sample
        x[3] += 1.0
        moved = tiny_models.unet(x, *args, class_labels=cameras).sample
    assert not torch.allclose(base[0], moved[0])
    assert torch.allclose(base[4:], moved[4:])


def test_text_tower(tiny_models, reference) -> None:
    with torch.no_grad():
        out = tiny_models.text(torch.from_numpy(reference["text_tokens"]))
    assert _relative(out.numpy(), reference["text_out"]) < RELATIVE


def test_autoencoder_decode(tiny_models, reference) -> None:
    with torch.no_grad():
        out = tiny_models.vae.decode(torch.from_numpy(reference["vae_z"]) / TINY.scale_factor)
    assert _relative(out.sample.numpy(), reference["vae_out"]) < RELATIVE


def test_schedule(reference) -> None:
    np.testing.assert_allclose(alphas_cumprod(TINY), reference["alphas_cumprod"], rtol=1e-6)
    schedule = DDIMSchedule.make(alphas_cumprod(TINY), 50)
    np.testing.assert_array_equal(schedule.timesteps, reference["ddim_timesteps"][::-1])
    np.testing.assert_allclose(schedule.alphas, reference["ddim_alphas"][::-1], rtol=1e-6)
    np.testing.assert_allclose(schedule.alphas_prev, reference["ddim_alphas_prev"][::-1],
                               rtol=1e-6)


@pytest.mark.parametrize("label", ["first", "middle"])
def test_guided_ddim_step(tiny_models, reference, label: str) -> None:
    pipeline = MVDreamPipeline(tiny_models, tokenizer=None)
    schedule = DDIMSchedule.make(pipeline.cumulative, 50)
    index = len(schedule.timesteps) - 1 - int(reference[f"step_{label}_index"])
    with torch.no_grad():
        x_prev, x0 = pipeline.step(
            torch.from_numpy(reference["step_x"]), schedule, index,
            torch.from_numpy(reference["step_cond_context"]),
            torch.from_numpy(reference["step_uncond_context"]),
            torch.from_numpy(reference["camera_elev15"]), float(reference["step_guidance"]),
        )
    assert _relative(x_prev.numpy(), reference[f"step_{label}_x_prev"]) < RELATIVE
    assert _relative(x0.numpy(), reference[f"step_{label}_pred_x0"]) < RELATIVE
