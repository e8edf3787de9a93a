"""Reading (strictly) and writing TRELLIS's official checkpoint layout.

A network is the pair ``<stem>.json`` (class + arguments, see config.py) and
``<stem>.safetensors``. Loading builds the network on the meta device and assigns the file's
tensors into it with ``strict=True`` and ``assign=True``: every parameter and persistent buffer
must be in the file with its shape, nothing else may be, and each tensor keeps the dtype it is
stored in (the fp16 torso stays fp16), exactly like upstream's ``load_state_dict`` into a
``use_fp16`` network: upstream's ``convert_to_fp16`` halves only the linear and convolution
layers of a network's torso (its transformer, residual and upsampling blocks), so input and
output layers, norms, the timestep embedder, RMS-norm gammas and buffers stay float32. The
caller then picks the torso's compute dtype (every network's ``convert_torso(dtype)``, the one
cast of ``transformer.convert_torso``). The dense structure networks take their config
dataclass; the sparse ones (``slat_flow``, ``slat_decoders``) take the JSON's ``args`` as
keywords, like upstream's constructors. Networks keep no non-persistent buffers (what a meta
build would leave empty): the position embeddings are computed per call or stored in the file.

pipeline.json names a network by a path inside the model folder or, for a network of another
repo, ``<owner>/<repo>/ckpts/<name>``; upstream tries the folder first and then the hub. We try
the folder first and then each *shared* folder given (the image model's snapshot, for the text
models' decoders; an optional decoder fetched as a component), never the network. The writers
produce the same layout; testing.py uses them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from backend.models.trellis.config import (
    PIPELINE_FILE,
    NetworkSpec,
    PipelineConfig,
    SSDecoderConfig,
    SSFlowConfig,
    network_spec_to_dict,
    read_network_spec,
)
from shared_protocol.errors import ErrorCode, ProtocolError

# Upstream class name -> (our module, class). The Elastic* variants are the same networks (a
# training-time memory mixin upstream).
NETWORK_CLASSES: dict[str, tuple[str, str]] = {
    "SparseStructureFlowModel": ("backend.models.trellis.ss_flow", "SparseStructureFlowModel"),
    "SparseStructureDecoder": ("backend.models.trellis.ss_decoder", "SparseStructureDecoder"),
    "SLatFlowModel": ("backend.models.trellis.slat_flow", "SLatFlowModel"),
    "ElasticSLatFlowModel": ("backend.models.trellis.slat_flow", "SLatFlowModel"),
    "SLatMeshDecoder": ("backend.models.trellis.slat_decoders", "SLatMeshDecoder"),
    "ElasticSLatMeshDecoder": ("backend.models.trellis.slat_decoders", "SLatMeshDecoder"),
    "SLatGaussianDecoder": ("backend.models.trellis.slat_decoders", "SLatGaussianDecoder"),
    "ElasticSLatGaussianDecoder": ("backend.models.trellis.slat_decoders", "SLatGaussianDecoder"),
    "SLatRadianceFieldDecoder": (
        "backend.models.trellis.slat_decoders",
        "SLatRadianceFieldDecoder",
    ),
    "ElasticSLatRadianceFieldDecoder": (
        "backend.models.trellis.slat_decoders",
        "SLatRadianceFieldDecoder",
    ),
}
REDOWNLOAD_HINT = "The TRELLIS checkpoint looks damaged or mismatched: download the model again."


def network_class(name: str) -> type[nn.Module]:
    module, attribute = NETWORK_CLASSES[name]
    return getattr(importlib.import_module(module), attribute)


def build_network(spec: NetworkSpec) -> nn.Module:
    """A fresh network for ``spec`` (on the current default device, e.g. meta)."""
    cls = network_class(spec.name)
    if isinstance(spec.config, SSFlowConfig | SSDecoderConfig):
        return cls(spec.config)
    return cls(**network_spec_to_dict(spec)["args"])


def resolve_stem(reference: str, folder: Path, shared: Sequence[Path] = ()) -> Path:
    """The ``<stem>`` path (no suffix) of a pipeline.json model reference.

    ``ckpts/x`` -> ``folder/ckpts/x``; ``owner/repo/ckpts/x`` -> ``folder/owner/repo/ckpts/x``
    when that pair exists (upstream's first try); else ``<shared>/ckpts/x`` for each shared
    folder in turn."""
    candidates = [folder / reference]
    parts = reference.split("/")
    inner = "/".join(parts[2:]) if len(parts) > 2 and "ckpts" in parts[2:] else reference
    candidates += [base / inner for base in shared]
    for stem in candidates:
        if stem.with_suffix(".json").is_file() and stem.with_suffix(".safetensors").is_file():
            return stem
    looked = ", ".join(str(c) + ".{json,safetensors}" for c in candidates)
    raise ProtocolError(
        ErrorCode.WEIGHTS_MISSING,
        f"TRELLIS network {reference!r} not found (looked for {looked})",
        hint="Download the model and its shared decoders (`dreamcad-backend download MODEL "
        "--with decoders` for the text models).",
    )


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file, on the CPU, in its stored dtype."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError as error:
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"TRELLIS checkpoint {path} is missing",
            hint="Download the model (`dreamcad-backend download MODEL`).",
        ) from error
    except Exception as error:  # safetensors raises its own untyped errors for a bad file
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"cannot read TRELLIS checkpoint {path.name}: {error}",
            hint=REDOWNLOAD_HINT,
        ) from error


def read_tensors(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file whose names start with ``prefix`` (only those are
    read: a two-tower CLIP file gives its text tower without loading the vision one)."""
    from safetensors import safe_open

    if not path.is_file():
        raise ProtocolError(
            ErrorCode.WEIGHTS_MISSING,
            f"checkpoint {path} is missing",
            hint="Download the model (`dreamcad-backend download MODEL`).",
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            names = [name for name in handle.keys() if name.startswith(prefix)]  # noqa: SIM118
            return {name: handle.get_tensor(name) for name in names}
    except Exception as error:  # safetensors raises its own untyped errors for a bad file
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"cannot read checkpoint {path.name}: {error}",
            hint=REDOWNLOAD_HINT,
        ) from error


def assign_state(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    where: str,
    rebuild: Callable[[nn.Module], None] | None = None,
) -> None:
    """Assign ``state`` into ``module`` strictly, keeping each tensor's dtype; a clear error
    names what is missing, unexpected or misshapen. ``rebuild`` fills the non-persistent
    buffers a meta-device build left empty (they are not in any file)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshapen = sorted(
        f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or misshapen:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("misshapen", misshapen),
        ):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise ProtocolError(
            ErrorCode.MODEL_FAILED,
            f"{where} does not match its network: " + "; ".join(parts),
            hint=REDOWNLOAD_HINT,
        )
    module.load_state_dict(state, strict=True, assign=True)
    if rebuild is not None:
        rebuild(module)
    left = [name for name, t in (*module.named_parameters(), *module.named_buffers()) if t.is_meta]
    if left:  # a non-persistent buffer built on meta: a bug in the network, not in the file
        raise ProtocolError(ErrorCode.MODEL_FAILED, f"{where}: {left[0]} was never loaded")


def load_network(
    stem: Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[nn.Module, NetworkSpec]:
    """``<stem>.json`` + ``<stem>.safetensors`` -> (eval network on ``device``, its spec).

    ``dtype`` None keeps the stored dtypes (upstream's fp16 torso); else the torso runs in it."""
    spec = read_network_spec(stem.with_suffix(".json"))
    with torch.device("meta"):
        network = build_network(spec)
    assign_state(network, read_state(stem.with_suffix(".safetensors")), stem.name + ".safetensors")
    network = network.to(device).eval().requires_grad_(False)
    if dtype is not None:
        network.convert_torso(dtype)
    return network, spec


def load_networks(
    models: Mapping[str, str],
    folder: Path,
    shared_folders: Sequence[Path],
    required: Sequence[str],
    optional: Sequence[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    loader_of: Callable[[str], Callable[..., tuple[nn.Module, object]]] | None = None,
) -> dict[str, nn.Module]:
    """pipeline.json's ``models`` -> {role: loaded network}, strictly for the ``required`` roles
    (ProtocolError when pipeline.json lacks one or its files are missing), and each ``optional``
    role whose files are found. ``loader_of(role)`` picks the loader (default: load_network);
    TRELLIS.2 loads its v1 structure decoder with this module's."""
    networks: dict[str, nn.Module] = {}
    for role in (*required, *optional):
        if role not in models:
            if role in optional:
                continue
            raise ProtocolError(ErrorCode.MODEL_FAILED, f"pipeline.json lacks {role}")
        try:
            stem = resolve_stem(models[role], folder, shared_folders)
        except ProtocolError:
            if role in optional:
                continue
            raise
        loader = load_network if loader_of is None else loader_of(role)
        networks[role], _ = loader(stem, device, dtype)
    return networks


def stored_state(network: nn.Module, use_fp16: bool = True) -> dict[str, torch.Tensor]:
    """The state dict as upstream stores it: with ``use_fp16`` the torso's linear and conv
    layers in float16 (the network is converted back in place if it was cast), the rest
    float32."""
    if use_fp16:
        network.convert_torso(torch.float16)
    return {key: value.detach().contiguous().cpu() for key, value in network.state_dict().items()}


def write_network(stem: Path, spec: NetworkSpec, state: Mapping[str, torch.Tensor]) -> Path:
    """Write ``<stem>.json`` and ``<stem>.safetensors`` (tensors as given); return the stem."""
    from safetensors.torch import save_file

    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(network_spec_to_dict(spec), indent=4))
    tensors = {key: value.detach().contiguous().cpu() for key, value in state.items()}
    save_file(tensors, str(stem.with_suffix(".safetensors")))
    return stem


def write_pipeline(folder: Path, config: PipelineConfig) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PIPELINE_FILE
    path.write_text(json.dumps(config.to_dict(), indent=4))
    return path
