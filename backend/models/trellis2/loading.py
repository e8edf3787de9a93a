"""Strict loading (and writing) of TRELLIS.2's checkpoints in their stored dtypes.

A network is ``<stem>.json`` (``{"name", "args"}``) + ``<stem>.safetensors``. It is built on the
meta device from the JSON's args (upstream's constructor keywords; an unknown one is an error),
then the file's tensors are assigned with TRELLIS v1's ``assign_state``: every parameter must be
in the file with its shape and nothing else may be; each keeps its stored dtype (the flows'
bf16 torso, the decoders' fp16 torso); the caller then picks the torso's compute dtype.

Upstream loads with ``load_state_dict(..., strict=False)`` (``trellis2/models/__init__.py``), so
a key missing from the file or a key the network lacks passes silently, and the tensors are
*copied* into the network's own dtypes (float32 unless ``dtype`` is passed). What that would
skip, and what we do instead:

- ``rope_phases`` of the structure flow: a persistent buffer upstream (complex64, the grid's RoPE
  phases); we compute it. A file carrying it (complex, or as its real (..., 2) view) is checked
  against ours (an error if it differs); one without it is fine. Whether the released file
  carries it could not be checked from here (no real weights).
- any other missing or unexpected key: an error naming it (upstream would run with the
  network's random initialisation for a missing key).

The structure decoder is TRELLIS v1's network and file (``backend.models.trellis.loading``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backend.models.trellis.loading import assign_state, read_state
from shared_protocol.errors import ErrorCode, ProtocolError

NETWORK_CLASSES: dict[str, tuple[str, str]] = {
    "SparseStructureFlowModel": ("backend.models.trellis2.flows", "SparseStructureFlowModel"),
    "SLatFlowModel": ("backend.models.trellis2.flows", "SLatFlowModel"),
    "ElasticSLatFlowModel": ("backend.models.trellis2.flows", "SLatFlowModel"),
    "FlexiDualGridVaeDecoder": ("backend.models.trellis2.sc_vae", "FlexiDualGridVaeDecoder"),
    "SparseUnetVaeDecoder": ("backend.models.trellis2.sc_vae", "SparseUnetVaeDecoder"),
    "FlexiDualGridVaeEncoder": (
        "backend.models.trellis2.sc_encoder", "FlexiDualGridVaeEncoder"
    ),
}
DERIVED_BUFFERS = ("rope_phases",)
HINT = "The TRELLIS.2 checkpoint looks damaged or mismatched: download the model again."


def build_network(name: str, args: Mapping[str, Any], where: str) -> nn.Module:
    import importlib

    if name not in NETWORK_CLASSES:
        raise ProtocolError(ErrorCode.MODEL_FAILED, f"{where}: unknown network {name!r}", hint=HINT)
    module, attribute = NETWORK_CLASSES[name]
    cls = getattr(importlib.import_module(module), attribute)
    try:
        return cls(**args)
    except (TypeError, ValueError) as error:
        raise ProtocolError(ErrorCode.MODEL_FAILED, f"{where}: {error}", hint=HINT) from error


def _check_derived(network: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Drop the derived buffers a file may carry, after checking them against ours."""
    for key in DERIVED_BUFFERS:
        stored = state.pop(key, None)
        if stored is None:
            continue
        if not stored.is_complex() and stored.shape[-1:] == (2,):  # a real (..., 2) view
            stored = torch.view_as_complex(stored.float().contiguous())
        ours = network.derived_buffer(key) if hasattr(network, "derived_buffer") else None
        if (
            ours is None
            or ours.shape != stored.shape
            or not torch.allclose(ours.to(stored.dtype), stored, atol=1e-4)
        ):
            raise ProtocolError(
                ErrorCode.MODEL_FAILED, f"{where}: stored {key} differs from the network's",
                hint=HINT,
            )  # fmt: skip


def load_network(
    stem: Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """``<stem>.json`` + ``.safetensors`` -> (eval network on ``device``, its JSON)."""
    where = stem.name + ".safetensors"
    spec = json.loads(stem.with_suffix(".json").read_text())
    with torch.device("meta"):
        network = build_network(spec.get("name", ""), spec.get("args", {}), stem.name + ".json")
    state = read_state(stem.with_suffix(".safetensors"))
    _check_derived(network, state, where)
    assign_state(network, state, where)
    network = network.to(device).eval().requires_grad_(False)
    if dtype is not None:
        network.convert_torso(dtype)
    return network, spec


def write_network(
    stem: Path, name: str, args: Mapping[str, Any], state: Mapping[str, torch.Tensor]
) -> Path:
    from safetensors.torch import save_file

    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"name": name, "args": dict(args)}, indent=4))
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in state.items()},
        str(stem.with_suffix(".safetensors")),
    )
    return stem
