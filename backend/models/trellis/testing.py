"""Tiny random TRELLIS models in the official layout, for tests (production never imports this).

``write_tiny_weights(folder, model_id)`` writes what ``download MODEL`` fetches: pipeline.json
and the ``ckpts/<stem>.{json,safetensors}`` pairs the model reads, in the stored dtypes (fp16
torso, fp32 rest); the image model's folder also gets the optional Gaussian decoder (as a full
copy of the repo has it). ``write_tiny_components`` writes the other repos' files:
DINOv2-with-registers (transformers layout) for the image model, the image repo's decoders, its
Gaussian decoder (the ``gaussians`` component) and CLIP ViT-L/14 (``config.json``, a two-tower
``model.safetensors`` with the legacy ``position_ids`` buffers, a byte-level tokenizer) for the
text models.

The structure-stage networks come from our modules. The structured-latent networks' tensors
are generated from the official key layout (research Appendix: names, shapes, dtypes), not
from the network modules, so their strict load checks those modules against the layout; the one
buffer, the Gaussian decoder's ``offset_perturbation``, holds its real (computed) values.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch import nn

from backend.models.trellis import adapter as cards
from backend.models.trellis.config import (
    GAUSSIAN_DECODER,
    IMAGE_PIPELINE,
    MESH_DECODER,
    RELEASED_SAMPLER,
    RF_DECODER,
    SLAT_FLOW,
    SLAT_MEAN,
    SLAT_STD,
    SS_DECODER,
    SS_FLOW,
    TEXT_PIPELINE,
    TINY_COND_CHANNELS,
    TINY_GAUSSIAN_DECODER,
    TINY_MESH_DECODER,
    TINY_RF_DECODER,
    TINY_SLAT_FLOW,
    TINY_SS_DECODER,
    TINY_SS_FLOW,
    NetworkSpec,
    PipelineConfig,
    SLatDecoderConfig,
    SLatFlowConfig,
)
from backend.models.trellis.dinov2 import CONFIG_FILE, WEIGHTS_FILE, DinoConfig, Dinov2WithRegisters
from backend.models.trellis.loading import stored_state, write_network, write_pipeline
from backend.models.trellis.ss_decoder import SparseStructureDecoder
from backend.models.trellis.ss_flow import SparseStructureFlowModel

IMAGE_MODEL = "trellis-image-large"
TEXT_SIZES = {"trellis-text-base": "B", "trellis-text-large": "L", "trellis-text-xlarge": "XL"}
SHARED_PREFIX = "JeffreyXiang/TRELLIS-image-large/"  # how the text pipeline.json names decoders
TINY_DINO = DinoConfig(
    hidden_size=TINY_COND_CHANNELS, num_hidden_layers=2, num_attention_heads=2, image_size=56
)
TINY_CLIP_TEXT = dict(
    hidden_size=TINY_COND_CHANNELS,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=77,
    projection_dim=16,
    hidden_act="quick_gelu",
)
# The tiny structure decoder's output bias: its random logits (std ~0.6 around -0.3) then mark
# about 3% of the 16^3 grid occupied, so a run decodes about a hundred voxels in a second or so.
TINY_OCCUPANCY_BIAS = -0.9
_STEPS = {"structure_steps": 1, "latent_steps": 1, "gaussians": True}
TINY_PARAMETERS: dict[str, dict] = {
    IMAGE_MODEL: dict(_STEPS),
    **{model_id: dict(_STEPS) for model_id in TEXT_SIZES},
}


def randomize(module: nn.Module, seed: int) -> nn.Module:
    """Random weights that keep activations in range: matrices ~ N(0, 1/fan_in), vectors small
    around their init (ones stay near one, zeros near zero). Buffers are left as built."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.dim() >= 2:
                fan_in = max(parameter[0].numel(), 1)
                parameter.copy_(noise / fan_in**0.5)
            else:
                centre = 1.0 if torch.all(parameter == 1) else 0.0
                parameter.copy_(centre + 0.1 * noise)
    return module


def pipeline_config(model_id: str) -> PipelineConfig:
    """The pipeline.json of a model (released stems, samplers and normalisation)."""
    if model_id == IMAGE_MODEL:
        stems = {
            SS_FLOW: "ckpts/ss_flow_img_dit_L_16l8_fp16",
            SS_DECODER: cards.SS_DECODER_STEM,
            SLAT_FLOW: "ckpts/slat_flow_img_dit_L_64l8p2_fp16",
            MESH_DECODER: cards.MESH_DECODER_STEM,
            GAUSSIAN_DECODER: "ckpts/slat_dec_gs_swin8_B_64l8gs32_fp16",
            RF_DECODER: "ckpts/slat_dec_rf_swin8_B_64l8r16_fp16",
        }
        name, condition = IMAGE_PIPELINE, "dinov2_vitl14_reg"
    else:
        size = TEXT_SIZES[model_id]
        stems = {
            SS_FLOW: f"ckpts/ss_flow_txt_dit_{size}_16l8_fp16",
            SLAT_FLOW: f"ckpts/slat_flow_txt_dit_{size}_64l8p2_fp16",
            SS_DECODER: SHARED_PREFIX + cards.SS_DECODER_STEM,
            MESH_DECODER: SHARED_PREFIX + cards.MESH_DECODER_STEM,
            GAUSSIAN_DECODER: SHARED_PREFIX + "ckpts/slat_dec_gs_swin8_B_64l8gs32_fp16",
            RF_DECODER: SHARED_PREFIX + "ckpts/slat_dec_rf_swin8_B_64l8r16_fp16",
        }
        name, condition = TEXT_PIPELINE, "openai/clip-vit-large-patch14"
    return PipelineConfig(
        name=name,
        models=stems,
        sparse_structure_sampler=RELEASED_SAMPLER,
        slat_sampler=RELEASED_SAMPLER,
        slat_mean=SLAT_MEAN,
        slat_std=SLAT_STD,
        condition_model=condition,
    )


def write_tiny_weights(folder: Path, model_id: str) -> Path:
    """pipeline.json + the model's own ckpts (as ``download MODEL`` fetches them) -> folder."""
    if model_id != IMAGE_MODEL and model_id not in TEXT_SIZES:
        raise ValueError(f"no tiny TRELLIS model {model_id!r}")
    config = pipeline_config(model_id)
    write_pipeline(folder, config)
    ss_flow = TINY_SS_FLOW
    if model_id == "trellis-text-xlarge":  # XL's structure flow also norms the cross q/k
        ss_flow = dataclasses.replace(ss_flow, qk_rms_norm_cross=True)
    flow = randomize(SparseStructureFlowModel(ss_flow), seed=1)
    write_network(
        folder / config.models[SS_FLOW],
        NetworkSpec("SparseStructureFlowModel", ss_flow),
        stored_state(flow, ss_flow.use_fp16),
    )
    write_network(
        folder / config.models[SLAT_FLOW],
        NetworkSpec("SLatFlowModel", TINY_SLAT_FLOW),
        slat_flow_state(TINY_SLAT_FLOW, seed=2),
    )
    if model_id == IMAGE_MODEL:
        write_decoders(folder)
        write_gaussian_decoder(folder)
        write_rf_decoder(folder)
    return folder


def write_decoders(folder: Path) -> Path:
    """The image repo's structure and mesh decoders (``ckpts/...``) -> folder."""
    decoder = randomize(SparseStructureDecoder(TINY_SS_DECODER), seed=3)
    with torch.no_grad():  # ~3% of the grid occupied, not a third: later stages scale with it
        decoder.out_layer[2].bias.fill_(TINY_OCCUPANCY_BIAS)
    write_network(
        folder / cards.SS_DECODER_STEM,
        NetworkSpec("SparseStructureDecoder", TINY_SS_DECODER),
        stored_state(decoder, TINY_SS_DECODER.use_fp16),
    )
    write_network(
        folder / cards.MESH_DECODER_STEM,
        NetworkSpec("SLatMeshDecoder", TINY_MESH_DECODER),
        mesh_decoder_state(TINY_MESH_DECODER, seed=4),
    )
    return folder


def write_gaussian_decoder(folder: Path) -> Path:
    """The image repo's Gaussian decoder (``ckpts/slat_dec_gs_*``) -> folder."""
    write_network(
        folder / cards.GAUSSIAN_DECODER_STEM,
        NetworkSpec("SLatGaussianDecoder", TINY_GAUSSIAN_DECODER),
        gaussian_decoder_state(TINY_GAUSSIAN_DECODER, seed=7),
    )
    return folder


def write_rf_decoder(folder: Path) -> Path:
    """The image repo's radiance-field decoder (``ckpts/slat_dec_rf_*``) -> folder."""
    write_network(
        folder / cards.RF_DECODER_STEM,
        NetworkSpec("SLatRadianceFieldDecoder", TINY_RF_DECODER),
        random_state(rf_decoder_layout(TINY_RF_DECODER), 8, TINY_RF_DECODER.use_fp16),
    )
    return folder


def write_tiny_components(folder: Path, model_id: str) -> dict[str, Path]:
    """The other repos' files each model needs: {component name: folder}."""
    if model_id == IMAGE_MODEL:
        return {"dinov2": write_dinov2(folder / "dinov2")}
    if model_id in TEXT_SIZES:
        return {
            "decoders": write_decoders(folder / "decoders"),
            "gaussians": write_gaussian_decoder(folder / "gaussians"),
            "radiance_field": write_rf_decoder(folder / "radiance_field"),
            "clip": write_clip(folder / "clip"),
        }
    raise ValueError(f"no tiny TRELLIS model {model_id!r}")


def write_dinov2(folder: Path, config: DinoConfig = TINY_DINO, seed: int = 5) -> Path:
    """``config.json`` + ``model.safetensors`` of a random DINOv2 with registers."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    encoder = randomize(Dinov2WithRegisters(config), seed)
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2))
    save_file(
        {k: v.contiguous() for k, v in encoder.state_dict().items()}, str(folder / WEIGHTS_FILE)
    )
    return folder


def write_clip(folder: Path, seed: int = 6) -> Path:
    """A two-tower CLIP in the hub layout: config.json, model.safetensors (with the legacy
    ``position_ids`` buffers the hub's file carries) and a byte-level tokenizer."""
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel

    from backend.models.testing.clip_tokenizer import END_TOKEN, START_TOKEN, write_clip_tokenizer

    vocab = write_clip_tokenizer(folder)
    ids = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    text = dict(
        TINY_CLIP_TEXT,
        vocab_size=vocab,
        bos_token_id=ids[START_TOKEN],
        eos_token_id=ids[END_TOKEN],
        pad_token_id=ids[END_TOKEN],
    )
    vision = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
        projection_dim=16,
    )
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    model = randomize(CLIPModel(config), seed)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    state["text_model.embeddings.position_ids"] = torch.arange(77)[None]
    state["vision_model.embeddings.position_ids"] = torch.arange(5)[None]
    config.save_pretrained(folder)
    save_file(state, str(folder / "model.safetensors"))
    return folder


# --- the structured-latent networks' official layout (research Appendix) -----------------------


def _linear(state: dict, name: str, out: int, inp: int, half: bool) -> None:
    state[f"{name}.weight"] = ((out, inp), half)
    state[f"{name}.bias"] = ((out,), half)


def _sparse_conv(state: dict, name: str, out: int, inp: int, kernel: int) -> None:
    # spconv's layout: [Co, kx, ky, kz, Ci] under a child ``conv``; always in a torso (fp16).
    state[f"{name}.conv.weight"] = ((out, kernel, kernel, kernel, inp), True)
    state[f"{name}.conv.bias"] = ((out,), True)


def _norm(state: dict, name: str, width: int) -> None:
    state[f"{name}.weight"] = ((width,), False)
    state[f"{name}.bias"] = ((width,), False)


def _cross_block(
    state: dict,
    name: str,
    width: int,
    context: int,
    heads: int,
    mlp: int,
    qk_norm: bool,
    qk_norm_cross: bool,
) -> None:
    _norm(state, f"{name}.norm2", width)
    _linear(state, f"{name}.self_attn.to_qkv", 3 * width, width, True)
    _linear(state, f"{name}.self_attn.to_out", width, width, True)
    _linear(state, f"{name}.cross_attn.to_q", width, width, True)
    _linear(state, f"{name}.cross_attn.to_kv", 2 * width, context, True)
    _linear(state, f"{name}.cross_attn.to_out", width, width, True)
    for attention, enabled in (("self_attn", qk_norm), ("cross_attn", qk_norm_cross)):
        if enabled:
            for which in ("q_rms_norm", "k_rms_norm"):
                state[f"{name}.{attention}.{which}.gamma"] = ((heads, width // heads), False)
    _linear(state, f"{name}.mlp.mlp.0", mlp, width, True)
    _linear(state, f"{name}.mlp.mlp.2", width, mlp, True)
    _linear(state, f"{name}.adaLN_modulation.1", 6 * width, width, True)


def _res_block(state: dict, name: str, inp: int, out: int, emb: int) -> None:
    _norm(state, f"{name}.norm1", inp)
    _sparse_conv(state, f"{name}.conv1", out, inp, 3)
    _sparse_conv(state, f"{name}.conv2", out, out, 3)
    _linear(state, f"{name}.emb_layers.1", 2 * out, emb, True)
    if inp != out:
        _linear(state, f"{name}.skip_connection", out, inp, True)


def slat_flow_layout(config: SLatFlowConfig) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{key: (shape, stored in half)} of an ``SLatFlowModel`` checkpoint."""
    width, io = config.model_channels, list(config.io_block_channels or ())
    state: dict[str, tuple[tuple[int, ...], bool]] = {}
    _linear(state, "t_embedder.mlp.0", width, 256, False)
    _linear(state, "t_embedder.mlp.2", width, width, False)
    _linear(state, "input_layer", io[0] if io else width, config.in_channels, False)
    index = 0
    for channels, following in zip(io, [*io[1:], width], strict=True):
        for _ in range(config.num_io_res_blocks - 1):
            _res_block(state, f"input_blocks.{index}", channels, channels, width)
            index += 1
        _res_block(state, f"input_blocks.{index}", channels, following, width)
        index += 1
    mlp = int(width * config.mlp_ratio)
    for block in range(config.num_blocks):
        _cross_block(
            state,
            f"blocks.{block}",
            width,
            config.cond_channels,
            config.heads,
            mlp,
            config.qk_rms_norm,
            config.qk_rms_norm_cross,
        )
    index = 0
    skip = 2 if config.use_skip_connection else 1
    for channels, previous in zip(io[::-1], [width, *io[1:][::-1]], strict=True):
        _res_block(state, f"out_blocks.{index}", previous * skip, channels, width)
        index += 1
        for _ in range(config.num_io_res_blocks - 1):
            _res_block(state, f"out_blocks.{index}", channels * skip, channels, width)
            index += 1
    _linear(state, "out_layer", config.out_channels, io[0] if io else width, False)
    return state


def _decoder_trunk(config: SLatDecoderConfig) -> dict[str, tuple[tuple[int, ...], bool]]:
    """The swin trunk every structured-latent decoder shares."""
    width = config.model_channels
    state: dict[str, tuple[tuple[int, ...], bool]] = {}
    _linear(state, "input_layer", width, config.latent_channels, False)
    mlp = int(width * config.mlp_ratio)
    for block in range(config.num_blocks):
        _linear(state, f"blocks.{block}.attn.to_qkv", 3 * width, width, True)
        _linear(state, f"blocks.{block}.attn.to_out", width, width, True)
        _linear(state, f"blocks.{block}.mlp.mlp.0", mlp, width, True)
        _linear(state, f"blocks.{block}.mlp.mlp.2", width, mlp, True)
    return state


def gaussian_decoder_layout(config: SLatDecoderConfig) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{key: (shape, stored in half)} of an ``SLatGaussianDecoder`` checkpoint, its
    ``offset_perturbation`` buffer excepted (see :func:`gaussian_decoder_state`)."""
    state = _decoder_trunk(config)
    # per Gaussian: xyz 3 + features_dc 3 + scaling 3 + rotation 4 + opacity 1
    outputs = config.representation_config["num_gaussians"] * 14
    _linear(state, "out_layer", outputs, config.model_channels, False)
    return state


def rf_decoder_layout(config: SLatDecoderConfig) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{key: (shape, stored in half)} of an ``SLatRadianceFieldDecoder`` checkpoint."""
    state = _decoder_trunk(config)
    rank, dim = config.representation_config["rank"], config.representation_config["dim"]
    # per voxel: trivec rank x 3 x dim + density rank + features_dc rank x 3
    _linear(state, "out_layer", rank * 3 * dim + rank + rank * 3, config.model_channels, False)
    return state


def mesh_decoder_layout(config: SLatDecoderConfig) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{key: (shape, stored in half)} of an ``SLatMeshDecoder`` checkpoint."""
    width = config.model_channels
    state = _decoder_trunk(config)
    for stage, (inp, out) in enumerate(((width, width // 4), (width // 4, width // 8))):
        name = f"upsample.{stage}"
        _norm(state, f"{name}.act_layers.0", inp)
        _sparse_conv(state, f"{name}.out_layers.0", out, inp, 3)
        _norm(state, f"{name}.out_layers.1", out)
        _sparse_conv(state, f"{name}.out_layers.3", out, out, 3)
        _sparse_conv(state, f"{name}.skip_connection", out, inp, 1)
    colour = config.representation_config.get("use_color", False)
    # sdf 8 + deform 8x3 + FlexiCubes weights 21 (+ colour 8x6)
    _linear(state, "out_layer", 8 + 24 + 21 + (48 if colour else 0), width // 8, False)
    return state


def radiance_field_decoder_layout(
    config: SLatDecoderConfig,
) -> dict[str, tuple[tuple[int, ...], bool]]:
    """{key: (shape, stored in half)} of an ``SLatRadianceFieldDecoder`` checkpoint."""
    state = _decoder_trunk(config)
    rank, dim = config.representation_config["rank"], config.representation_config["dim"]
    # per voxel: trivec rank x 3 x dim + density rank + features_dc rank x 3
    _linear(state, "out_layer", rank * 3 * dim + rank + rank * 3, config.model_channels, False)
    return state


def random_state(
    layout: dict[str, tuple[tuple[int, ...], bool]], seed: int, stored_half: bool = True
) -> dict:
    """Random tensors for a layout, scaled like :func:`randomize`, in their stored dtypes
    (``stored_half`` False: a checkpoint written without ``use_fp16``, all float32)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, (shape, half) in layout.items():
        noise = torch.randn(shape, generator=generator)
        if key.endswith(".gamma"):
            value = 1.0 + 0.1 * noise
        elif len(shape) >= 2:
            value = noise / max(int(torch.tensor(shape[1:]).prod()), 1) ** 0.5
        else:
            value = (1.0 if key.endswith(".weight") else 0.0) + 0.1 * noise  # norms' scales
        state[key] = value.half() if half and stored_half else value
    return state


def slat_flow_state(config: SLatFlowConfig, seed: int) -> dict:
    return random_state(slat_flow_layout(config), seed, config.use_fp16)


def mesh_decoder_state(config: SLatDecoderConfig, seed: int) -> dict:
    return random_state(mesh_decoder_layout(config), seed, config.use_fp16)


def gaussian_decoder_state(config: SLatDecoderConfig, seed: int) -> dict:
    """Random weights, and the persistent ``offset_perturbation`` buffer (float32, in the
    official file) with its real values."""
    from backend.models.trellis.slat_decoders import gaussian_offset_perturbation

    state = random_state(gaussian_decoder_layout(config), seed, config.use_fp16)
    rep = config.representation_config
    state["offset_perturbation"] = gaussian_offset_perturbation(
        rep["num_gaussians"], rep["voxel_size"]
    )
    return state


def radiance_field_decoder_state(config: SLatDecoderConfig, seed: int) -> dict:
    return random_state(radiance_field_decoder_layout(config), seed, config.use_fp16)
