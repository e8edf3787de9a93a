"""Reading and writing TripoSR checkpoints in the official on-disk layout.

A model folder looks like the hub repo ``stabilityai/TripoSR``: ``config.yaml`` plus
``model.ckpt`` (a ``torch.save``'d flat state dict) or, as an alternative we accept,
``model.safetensors`` with the same keys. Checkpoints are read with ``weights_only=True`` (no
pickled code runs) and memory-mapped; the network is built on the meta device and the tensors
are assigned into it with ``strict=True``, so a missing, extra or misshapen tensor is an error
and no second copy of the 1.7 GB of weights is ever made. ``write_model_folder`` writes the
same layout (testing.py uses it for tiny random-weight models).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from backend.models.triposr.config import KNOWN_VIT_CONFIGS, TripoSRConfig
from backend.models.triposr.network import TripoSRNet
from shared_protocol.errors import ErrorCode, ProtocolError

CONFIG_NAME = "config.yaml"
CHECKPOINT_NAMES = ("model.ckpt", "model.safetensors")
DOWNLOAD_HINT = "run `dreamcad-backend download triposr`"


def find_model_files(weights_dir: Path | None) -> tuple[Path, Path]:
    """(config.yaml, checkpoint) inside ``weights_dir``; WEIGHTS_MISSING when absent."""
    if weights_dir is None or not Path(weights_dir).is_dir():
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"TripoSR weights folder not found: {weights_dir}",
            hint=DOWNLOAD_HINT,
        )
    weights_dir = Path(weights_dir)
    config = weights_dir / CONFIG_NAME
    checkpoints = [weights_dir / n for n in CHECKPOINT_NAMES if (weights_dir / n).is_file()]
    if not config.is_file() or not checkpoints:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"{weights_dir} lacks {CONFIG_NAME} or one of {', '.join(CHECKPOINT_NAMES)}",
            hint=DOWNLOAD_HINT,
        )
    return config, checkpoints[0]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.ckpt``/``.pt`` (weights_only, memory-mapped) or ``.safetensors`` file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch/safetensors raise many types for a bad file
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"cannot read TripoSR checkpoint {path.name}: {error}",
            hint=f"The file looks damaged: {DOWNLOAD_HINT} again.",
        ) from error
    # Some training checkpoints wrap the weights; the official file is flat.
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ProtocolError(
            ErrorCode.MODEL_FAILED, f"{path.name} does not hold a state dict of tensors"
        )
    return state


def build_empty(config: TripoSRConfig) -> TripoSRNet:
    """The network with no storage (meta device): free to build at full size."""
    with torch.device("meta"):
        return TripoSRNet(config)


def load_state(model: TripoSRNet, state: dict[str, torch.Tensor]) -> None:
    """Assign ``state`` into ``model`` strictly; a clear error lists what does not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(
        f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or misshapen:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("misshapen", misshapen)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            "TripoSR checkpoint does not match its config: " + "; ".join(parts),
            hint=f"config.yaml and the checkpoint must come from one release: {DOWNLOAD_HINT}.",
        )
    model.load_state_dict(state, strict=True, assign=True)


def load_model(
    weights_dir: Path | None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> TripoSRNet:
    """Config + checkpoint from ``weights_dir`` -> an eval-mode network on ``device``.

    ``dtype`` (default float32) casts the weights; float32 keeps upstream's numerics, and
    half precision on CUDA is applied through autocast by the caller instead.
    """
    config_path, checkpoint = find_model_files(weights_dir)
    config = TripoSRConfig.from_yaml(config_path)
    model = build_empty(config)
    load_state(model, read_state_dict(checkpoint))
    model = model.to(device=device, dtype=dtype or torch.float32)
    return model.eval().requires_grad_(False)


def write_model_folder(
    folder: Path, config: TripoSRConfig, state: dict[str, torch.Tensor], fmt: str = "ckpt"
) -> Path:
    """Write ``config.yaml`` + ``model.ckpt`` (or ``.safetensors``) in the official layout.

    A ViT config that is not a known hub id is written as ``<vit_name>/config.json`` beside
    them, where :func:`~backend.models.triposr.config.resolve_vit_config` finds it.
    """
    from omegaconf import OmegaConf

    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(config.to_dict()), folder / CONFIG_NAME)
    if config.vit_name not in KNOWN_VIT_CONFIGS:
        vit_dir = folder / config.vit_name
        vit_dir.mkdir(parents=True, exist_ok=True)
        (vit_dir / "config.json").write_text(json.dumps(config.vit.to_json(), indent=1))
    tensors = {key: value.detach().cpu().contiguous() for key, value in state.items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = folder / "model.safetensors"
        save_file(tensors, str(path))
    elif fmt == "ckpt":
        path = folder / "model.ckpt"
        torch.save(tensors, path)
    else:
        raise ValueError(f"unknown checkpoint format {fmt!r}")
    return path

