"""loading.py: the official layout read strictly in its stored dtypes, and written back.

The full-size checks build the released networks on the meta device (no memory) and compare
their state dicts with the research Appendix's totals, which reproduce the hub's file sizes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from backend.models.trellis import testing
from backend.models.trellis.config import (
    TINY_SS_FLOW,
    NetworkSpec,
    network_spec_from_dict,
)
from backend.models.trellis.loading import (
    load_network,
    resolve_stem,
    stored_state,
    write_network,
)
from backend.models.trellis.ss_decoder import SparseStructureDecoder
from backend.models.trellis.ss_flow import SparseStructureFlowModel
from shared_protocol.errors import ErrorCode, ProtocolError
from tests.backend.models.trellis.test_config import (
    MESH_DECODER,
    SLAT_FLOW_XL,
    SS_DECODER,
    SS_FLOW_L,
)

STEM = "ckpts/ss_flow_img_dit_L_16l8_fp16"


def _released(raw: dict) -> torch.nn.Module:
    spec = network_spec_from_dict(raw, "x.json")
    cls = SparseStructureFlowModel if spec.name == "SparseStructureFlowModel" else None
    with torch.device("meta"):
        network = (cls or SparseStructureDecoder)(spec.config)
    network.convert_torso(torch.float16)  # what use_fp16 stores
    return network


def _totals(state: dict) -> tuple[int, float, float]:
    """(tensors, million elements, MB at the stored dtypes)."""
    elements = sum(t.numel() for t in state.values())
    size = sum(t.numel() * t.element_size() for t in state.values())
    return len(state), elements / 1e6, size / 1e6


def test_the_released_structure_networks_have_the_appendix_layout() -> None:
    flow = _released(SS_FLOW_L).state_dict()
    count, million, megabytes = _totals(flow)
    assert count == 489 and million == pytest.approx(559.74, abs=0.01)
    assert megabytes == pytest.approx(1130.7, abs=0.1)  # the hub's 1.13 GB file
    assert flow["pos_emb"].shape == (4096, 1024) and flow["pos_emb"].dtype == torch.float32
    assert flow["blocks.3.self_attn.to_qkv.weight"].dtype == torch.float16
    for key in ("blocks.3.self_attn.q_rms_norm.gamma", "blocks.3.norm2.weight",
                "t_embedder.mlp.0.weight", "input_layer.weight", "out_layer.bias"):  # fmt: skip
        assert flow[key].dtype == torch.float32, key
    decoder = _released(SS_DECODER).state_dict()
    count, million, megabytes = _totals(decoder)
    assert count == 74 and million == pytest.approx(73.67, abs=0.01)
    assert megabytes == pytest.approx(147.6, abs=0.1)
    assert decoder["blocks.2.conv.weight"].shape == (1024, 512, 3, 3, 3)
    assert decoder["out_layer.2.weight"].dtype == torch.float32


def test_the_generated_slat_layouts_have_the_appendix_totals() -> None:
    """testing.py's layouts of engineer S's networks, against the Appendix (and the hub)."""
    image_large = {"model_channels": 1024, "cond_channels": 1024, "num_blocks": 24,
                   "num_io_res_blocks": 2, "io_block_channels": [128]}  # fmt: skip
    args = {**SLAT_FLOW_XL["args"], **image_large}
    flow = network_spec_from_dict({**SLAT_FLOW_XL, "args": args}, "x.json")
    layout = testing.slat_flow_layout(flow.config)
    elements = sum(torch.Size(shape).numel() for shape, _ in layout.values())
    size = sum(torch.Size(shape).numel() * (2 if half else 4) for shape, half in layout.values())
    assert len(layout) == 526 and elements / 1e6 == pytest.approx(600.43, abs=0.01)
    assert size / 1e6 == pytest.approx(1203.7, abs=0.1)
    assert layout["out_blocks.0.conv1.conv.weight"] == ((128, 3, 3, 3, 2048), True)
    mesh = testing.mesh_decoder_layout(network_spec_from_dict(MESH_DECODER, "x.json").config)
    elements = sum(torch.Size(shape).numel() for shape, _ in mesh.values())
    assert len(mesh) == 120 and elements / 1e6 == pytest.approx(90.93, abs=0.01)
    assert mesh["upsample.0.skip_connection.conv.weight"] == ((192, 1, 1, 1, 768), True)
    assert mesh["out_layer.weight"] == ((101, 96), False)


@pytest.fixture
def tiny_flow(tmp_path: Path) -> tuple[Path, dict]:
    network = testing.randomize(SparseStructureFlowModel(TINY_SS_FLOW), seed=11)
    state = stored_state(network)
    write_network(tmp_path / STEM, NetworkSpec("SparseStructureFlowModel", TINY_SS_FLOW), state)
    return tmp_path / STEM, state


def test_a_network_reads_back_exactly_in_its_stored_dtypes(tiny_flow: tuple[Path, dict]) -> None:
    stem, written = tiny_flow
    network, spec = load_network(stem)
    assert spec.config == TINY_SS_FLOW and not network.training
    loaded = network.state_dict()
    assert loaded.keys() == written.keys()
    for key, value in written.items():
        assert loaded[key].dtype == value.dtype, key
        assert torch.equal(loaded[key], value), key
    assert loaded["blocks.0.mlp.mlp.0.weight"].dtype == torch.float16
    assert loaded["blocks.0.norm2.weight"].dtype == torch.float32
    assert network.dtype == torch.float16  # the torso runs in what it is stored in


def test_a_float32_load_casts_only_the_torso(tiny_flow: tuple[Path, dict]) -> None:
    stem, written = tiny_flow
    network, _ = load_network(stem, dtype=torch.float32)
    state = network.state_dict()
    assert {value.dtype for value in state.values()} == {torch.float32}
    assert network.dtype == torch.float32
    assert torch.equal(state["blocks.1.adaLN_modulation.1.weight"],
                       written["blocks.1.adaLN_modulation.1.weight"].float())  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda s: s.pop("pos_emb"), "1 missing (e.g. pos_emb)"),
        (lambda s: s.__setitem__("blocks.0.extra", torch.zeros(1)), "1 unexpected"),
        (lambda s: s.__setitem__("out_layer.bias", torch.zeros(3)), "misshapen"),
    ],
)
def test_a_missing_extra_or_misshapen_tensor_fails_clearly(
    tiny_flow: tuple[Path, dict], edit, words: str
) -> None:
    stem, _written = tiny_flow
    state = load_file(str(stem.with_suffix(".safetensors")))
    edit(state)
    save_file(state, str(stem.with_suffix(".safetensors")))
    with pytest.raises(ProtocolError) as caught:
        load_network(stem)
    assert caught.value.code == ErrorCode.MODEL_FAILED
    assert words in caught.value.info.message
    assert stem.name in caught.value.info.message


def test_a_damaged_file_is_a_model_failure(tiny_flow: tuple[Path, dict]) -> None:
    stem, _ = tiny_flow
    stem.with_suffix(".safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ProtocolError) as caught:
        load_network(stem)
    assert caught.value.code == ErrorCode.MODEL_FAILED


def test_references_resolve_in_the_folder_then_in_shared_folders(tmp_path: Path) -> None:
    own, shared = tmp_path / "text", tmp_path / "image"
    for stem in (own / "ckpts" / "flow", shared / "ckpts" / "dec"):
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text("{}")
        stem.with_suffix(".safetensors").write_bytes(b"")
    assert resolve_stem("ckpts/flow", own) == own / "ckpts" / "flow"
    reference = "JeffreyXiang/TRELLIS-image-large/ckpts/dec"
    assert resolve_stem(reference, own, [shared]) == shared / "ckpts" / "dec"
    with pytest.raises(ProtocolError) as caught:
        resolve_stem(reference, own)
    assert caught.value.code == ErrorCode.WEIGHTS_MISSING
    assert "--with decoders" in caught.value.info.hint
    assert resolve_stem("ckpts/dec", own, [shared]) == shared / "ckpts" / "dec"  # a component


SLAT_NETWORKS = {  # the structured-latent networks: JSON args as keywords, built on meta
    "SLatFlowModel": (testing.TINY_SLAT_FLOW, testing.slat_flow_state),
    "SLatMeshDecoder": (testing.TINY_MESH_DECODER, testing.mesh_decoder_state),
    "SLatGaussianDecoder": (testing.TINY_GAUSSIAN_DECODER, testing.gaussian_decoder_state),
}


@pytest.mark.parametrize("name", SLAT_NETWORKS)
def test_the_sparse_networks_load_strictly_in_their_stored_dtypes(tmp_path: Path, name) -> None:
    config, state_of = SLAT_NETWORKS[name]
    written = state_of(config, seed=3)
    stem = write_network(tmp_path / "ckpts" / "net", NetworkSpec(name, config), written)
    network, spec = load_network(stem)
    assert type(network).__name__ == name and spec.config == config
    loaded = dict(network.state_dict())
    assert loaded.keys() == written.keys()
    for key, value in written.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key
    assert network.dtype == torch.float16
    assert not any(t.is_meta for t in (*network.parameters(), *network.buffers()))
    as_float, _ = load_network(stem, dtype=torch.float32)
    assert {v.dtype for v in as_float.state_dict().values()} == {torch.float32}


def test_the_gaussian_offsets_come_from_the_file(tmp_path: Path) -> None:
    """``offset_perturbation`` is a persistent buffer: loaded (not recomputed), and required."""
    config = testing.TINY_GAUSSIAN_DECODER
    state = testing.gaussian_decoder_state(config, seed=3)
    state["offset_perturbation"] = state["offset_perturbation"] + 0.25
    stem = write_network(tmp_path / "ckpts" / "gs", NetworkSpec("SLatGaussianDecoder", config),
                         state)  # fmt: skip
    network, _ = load_network(stem)
    assert torch.equal(network.offset_perturbation, state["offset_perturbation"])
    state.pop("offset_perturbation")
    write_network(stem, NetworkSpec("SLatGaussianDecoder", config), state)
    with pytest.raises(ProtocolError, match=r"1 missing \(e.g. offset_perturbation"):
        load_network(stem)
