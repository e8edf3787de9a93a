"""The 2.5D paint UNet against hy3dgen 2.0.2's on identical tiny random weights.

tests/data/hunyuan/paint_unet.npz: a tiny UNet config (``config_json``), hy3dgen's random
weights under their checkpoint keys (``weight:<key>``), and per case (``guided``: two objects,
the first the unconditional half with zero reference and reference scale 0; ``single``: one
object, scale 1) the inputs and hy3dgen's predicted noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.models.hunyuan3d.paint.loading import build_paint_unet, load_paint_unet
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.hunyuan3d.conftest import prefixed_tensors

DATA = Path(__file__).resolve().parents[4] / "data" / "hunyuan"


def _reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "paint_unet.npz") as data:
        return {key: data[key] for key in data.files}


def _write_unet(reference: dict[str, np.ndarray], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(str(reference["config_json"]), encoding="utf-8")
    torch.save(prefixed_tensors(reference, "weight:"), folder / "diffusion_pytorch_model.bin")
    return folder


@pytest.mark.parametrize("case", ["guided", "single"])
def test_matches_hy3dgen(case: str, tmp_path: Path) -> None:
    reference = _reference()
    unet = load_paint_unet(_write_unet(reference, tmp_path / "unet"), torch.device("cpu"),
                           torch.float32)
    tensor = {k.split(":")[1]: torch.from_numpy(v) for k, v in reference.items()
              if k.startswith(f"{case}:")}
    objects = tensor["sample"].shape[0]
    scale = torch.tensor([0.0, 1.0]) if bool(tensor["guided"]) else 1.0
    features = unet.encode_reference(tensor["reference"], torch.zeros(objects, 1, dtype=torch.long))
    ours = unet(tensor["sample"], torch.tensor(637.0), tensor["prompt"], tensor["normal"],
                tensor["position"], tensor["cameras"], features, scale)
    expected = tensor["output"]
    error = (ours - expected).abs().max() / expected.abs().max()
    assert error < 1e-4, f"relative error {error:.2e}"


def test_reference_and_views_change_the_output(tmp_path: Path) -> None:
    """Each extra attention matters: a different reference or another view's content moves
    the prediction of view 0 (so the parity above is not blind to them)."""
    reference = _reference()
    unet = load_paint_unet(_write_unet(reference, tmp_path / "unet"), torch.device("cpu"),
                           torch.float32)
    t = {k.split(":")[1]: torch.from_numpy(v) for k, v in reference.items()
         if k.startswith("single:")}
    cameras0 = torch.zeros(1, 1, dtype=torch.long)

    def predict(ref: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        features = unet.encode_reference(ref, cameras0)
        return unet(sample, torch.tensor(637.0), t["prompt"], t["normal"], t["position"],
                    t["cameras"], features)[0]

    base = predict(t["reference"], t["sample"])
    assert not torch.allclose(base, predict(t["reference"] * -1, t["sample"]))
    other_view = t["sample"].clone()
    other_view[:, 1] *= -1
    assert not torch.allclose(base, predict(t["reference"], other_view))


def test_mismatched_checkpoint_is_a_typed_error(tmp_path: Path) -> None:
    reference = _reference()
    folder = _write_unet(reference, tmp_path / "unet")
    state = torch.load(folder / "diffusion_pytorch_model.bin", weights_only=True)
    state.pop("unet.learned_text_clip_gen")
    torch.save(state, folder / "diffusion_pytorch_model.bin")
    with pytest.raises(ProtocolError) as error:
        load_paint_unet(folder, torch.device("cpu"), torch.float32)
    assert error.value.code == ErrorCode.WEIGHTS_MISSING


def test_full_size_keys_match_the_official_manifest() -> None:
    """Names and shapes of the official checkpoint (hy3dgen's module at SD 2.1's UNet config,
    built on the meta device) against ours at the same config."""
    manifest = json.loads((DATA / "paint_unet_manifest.json").read_text(encoding="utf-8"))
    ours = build_paint_unet(manifest["config"]).state_dict()
    assert {k: list(v.shape) for k, v in ours.items()} == manifest["shapes"]
