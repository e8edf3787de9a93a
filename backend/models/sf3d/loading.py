"""Reading and writing SF3D checkpoints in the official layout (config.yaml + model.safetensors).

The official ``model.safetensors`` stores each tensor once under the names of
:class:`SF3DNetwork`'s state dict (mixed fp16/fp32). Loading is strict: a missing, unexpected or
mis-shaped tensor is an error naming it. Upstream's flat ``image_tokenizer.modulations.N`` list
aliases the per-layer modulations; a file saved under those names is mapped back.
``save_checkpoint`` writes the same layout (testing.py uses it for tiny random models). Upstream's
tet grids (``{resolution}_tets.npz``) ship in its GitHub repo, not on the hub: ``tet_grid``
reads one when it is found and builds our regular grid of the same size otherwise.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from backend.models.sf3d.config import SF3DConfig, load_config
from backend.models.sf3d.isosurface import TetGrid
from backend.models.sf3d.network import SF3DNetwork
from shared_protocol.errors import ErrorCode, ProtocolError

CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
TETS_DIR_ENV = "DREAMCAD_SF3D_TETS_DIR"  # a folder holding upstream's {resolution}_tets.npz
_FLAT_MODULATION = re.compile(r"^image_tokenizer\.modulations\.(\d+)\.(.+)$")


def canonical_key(key: str) -> str:
    """Map upstream's shared-module alias ``modulations.K`` to ``layer.K//2.normX_modulation``."""
    match = _FLAT_MODULATION.match(key)
    if not match:
        return key
    index = int(match.group(1))
    norm = "norm1_modulation" if index % 2 == 0 else "norm2_modulation"
    return f"image_tokenizer.model.encoder.layer.{index // 2}.{norm}.{match.group(2)}"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file (or a weights_only torch file), keys canonicalised."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw = load_file(str(path))
    else:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        raw = raw.get("state_dict", raw)
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        state.setdefault(canonical_key(key), value)
    return state


def load_weights(model: SF3DNetwork, state: dict[str, torch.Tensor]) -> None:
    """Strict load (dtype cast to the model's); errors name the offending keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected),
                            ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            "SF3D checkpoint does not match the configured architecture: " + "; ".join(parts),
            field="weights.model.safetensors",
            hint="Re-download the weights (`dreamcad-backend download sf3d`); the config.yaml "
            "and model.safetensors must come from the same revision.",
        )
    model.load_state_dict(state, strict=True)


def check_weights_dir(weights_dir: Path | None) -> Path:
    """The folder holding both official files, or WEIGHTS_MISSING explaining how to get them."""
    hint = (
        "run `dreamcad-backend download sf3d` (the repo is gated: accept the Stability AI "
        "Community License at https://huggingface.co/stabilityai/stable-fast-3d and log in with "
        "`hf auth login` or HF_TOKEN first)"
    )
    if weights_dir is None:
        raise ProtocolError(ErrorCode.WEIGHTS_MISSING, "SF3D weights are not installed",
                            field="model", hint=hint)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (weights_dir / name).is_file():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"SF3D weights folder {weights_dir} has no {name}",
                field="model",
                hint=hint,
            )
    return weights_dir


def load_network(
    weights_dir: Path, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[SF3DNetwork, SF3DConfig]:
    """Build the network from ``config.yaml`` on the meta device, then load the weights."""
    folder = check_weights_dir(weights_dir)
    config = load_config(folder / CONFIG_FILE)
    with torch.device("meta"):
        model = SF3DNetwork(config)
    state = read_state_dict(folder / WEIGHTS_FILE)
    model.to_empty(device="cpu")
    # Non-persistent buffers are not in the file: recompute them on the real device.
    reset_buffers(model)
    load_weights(model, state)
    model = model.to(device=device, dtype=dtype).eval()
    return model, config


def reset_buffers(model: SF3DNetwork) -> None:
    """Set the normalisation buffers the file does not hold (they are not persistent)."""
    from backend.models.sf3d.clip import CLIP_MEAN, CLIP_STD
    from backend.models.sf3d.dinov2 import IMAGENET_MEAN, IMAGENET_STD

    tok = model.image_tokenizer
    tok.image_mean.copy_(torch.tensor(IMAGENET_MEAN).reshape(1, 1, 3, 1, 1))
    tok.image_std.copy_(torch.tensor(IMAGENET_STD).reshape(1, 1, 3, 1, 1))
    est = model.image_estimator
    est.clip_mean.copy_(torch.tensor(CLIP_MEAN).view(1, 3, 1, 1))
    est.clip_std.copy_(torch.tensor(CLIP_STD).view(1, 3, 1, 1))


def save_checkpoint(model: SF3DNetwork, folder: Path, config_yaml: str) -> None:
    """Write ``config.yaml`` + ``model.safetensors`` in the official layout (tests, tools)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(config_yaml)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE))


def tet_grid_file(resolution: int, weights_dir: Path | None) -> Path | None:
    """Upstream's ``{resolution}_tets.npz``: in ``DREAMCAD_SF3D_TETS_DIR``, else the weights
    folder or its ``load/tets`` (where upstream's repo keeps them); None when absent."""
    name = f"{resolution}_tets.npz"
    folders = [Path(env)] if (env := os.environ.get(TETS_DIR_ENV)) else []
    if weights_dir is not None:
        folders += [Path(weights_dir), Path(weights_dir) / "load" / "tets"]
    return next((folder / name for folder in folders if (folder / name).is_file()), None)


def tet_grid(resolution: int, weights_dir: Path | None) -> TetGrid:
    """The tet grid for ``resolution``: upstream's file when found, else our regular grid of the
    same size (``resolution // 2`` cells a side)."""
    path = tet_grid_file(resolution, weights_dir)
    return TetGrid.from_npz(path) if path else TetGrid.regular(resolution // 2)
