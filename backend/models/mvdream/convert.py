"""The official checkpoint's LDM key layout -> our modules' keys, computed from the config.

``sd-v2.1-base-4view.pt`` is one state dict of upstream's ``LatentDiffusionInterface``:
``model.diffusion_model.*`` (the multi-view UNet in LDM's numbered-block layout),
``first_stage_model.*`` (the LDM autoencoder), ``cond_stage_model.model.*`` (the OpenCLIP text
tower, kept under open_clip's own names) and the noise-schedule buffers. The file is loaded
unchanged; these functions derive each LDM name's diffusers counterpart by walking the same
block structure the config describes, so a missing or extra key is a loud error, never a
silently random weight.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

from backend.models.mvdream.config import MVDreamConfig

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.model."
# The interface's registered noise-schedule buffers (we recompute what we use, and check).
SCHEDULE_KEYS = (
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2",
)

_LDM_RESNET = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
               "nin_shortcut": "conv_shortcut"}
_VAE_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v",
                  "proj_out": "to_out.0"}


def split_checkpoint(state: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Split by part: ``unet`` / ``vae`` / ``text`` (prefix removed) and ``schedule``."""
    parts: dict[str, dict[str, torch.Tensor]] = {"unet": {}, "vae": {}, "text": {},
                                                 "schedule": {}, "other": {}}
    for key, value in state.items():
        for part, prefix in (("unet", UNET_PREFIX), ("vae", VAE_PREFIX), ("text", TEXT_PREFIX)):
            if key.startswith(prefix):
                parts[part][key[len(prefix):]] = value
                break
        else:
            parts["schedule" if key in SCHEDULE_KEYS else "other"][key] = value
    return parts


def _prefix_pairs(config: MVDreamConfig) -> Iterator[tuple[str, str, str]]:
    """(ldm prefix, diffusers prefix, kind) for every UNet module; kind picks the sub-key map."""
    yield "time_embed.0", "time_embedding.linear_1", "plain"
    yield "time_embed.2", "time_embedding.linear_2", "plain"
    yield "camera_embed.0", "class_embedding.linear_1", "plain"
    yield "camera_embed.2", "class_embedding.linear_2", "plain"
    yield "input_blocks.0.0", "conv_in", "plain"
    levels = config.attention_levels
    blocks = config.num_res_blocks
    last = len(levels) - 1
    index = 1
    for level, has_attention in enumerate(levels):
        for j in range(blocks):
            yield f"input_blocks.{index}.0", f"down_blocks.{level}.resnets.{j}", "resnet"
            if has_attention:
                yield f"input_blocks.{index}.1", f"down_blocks.{level}.attentions.{j}", "plain"
            index += 1
        if level != last:
            yield f"input_blocks.{index}.0.op", f"down_blocks.{level}.downsamplers.0.conv", "plain"
            index += 1
    yield "middle_block.0", "mid_block.resnets.0", "resnet"
    yield "middle_block.1", "mid_block.attentions.0", "plain"
    yield "middle_block.2", "mid_block.resnets.1", "resnet"
    index = 0
    for up, has_attention in enumerate(reversed(levels)):
        for j in range(blocks + 1):
            yield f"output_blocks.{index}.0", f"up_blocks.{up}.resnets.{j}", "resnet"
            slot = 1
            if has_attention:
                yield f"output_blocks.{index}.1", f"up_blocks.{up}.attentions.{j}", "plain"
                slot = 2
            if j == blocks and up != last:
                yield (f"output_blocks.{index}.{slot}.conv", f"up_blocks.{up}.upsamplers.0.conv",
                       "plain")
            index += 1
    yield "out.0", "conv_norm_out", "plain"
    yield "out.2", "conv_out", "plain"


def _rename(key: str, pairs: list[tuple[str, str, str]], resnet_map: Mapping[str, str]) -> str:
    for old, new, kind in pairs:
        if key.startswith(old + "."):
            rest = key[len(old) + 1:]
            if kind == "resnet":
                for sub_old, sub_new in resnet_map.items():
                    if rest.startswith(sub_old + "."):
                        return f"{new}.{sub_new}.{rest[len(sub_old) + 1:]}"
                raise KeyError(f"unexpected resnet key {key}")
            return f"{new}.{rest}"
    raise KeyError(f"no diffusers counterpart for UNet key {key}")


def convert_unet(ldm: Mapping[str, torch.Tensor], config: MVDreamConfig) -> dict[str, torch.Tensor]:
    """UNet state dict in LDM names (prefix removed) -> diffusers names."""
    # Longest prefixes first so "input_blocks.1" never captures "input_blocks.10.*".
    pairs = sorted(_prefix_pairs(config), key=lambda p: -len(p[0]))
    return {_rename(key, pairs, _LDM_RESNET): value for key, value in ldm.items()}


def _vae_prefixes(config: MVDreamConfig) -> Iterator[tuple[str, str, str]]:
    levels = len(config.vae_ch_mult)
    for side in ("encoder", "decoder"):
        yield f"{side}.conv_in", f"{side}.conv_in", "plain"
        yield f"{side}.conv_out", f"{side}.conv_out", "plain"
        yield f"{side}.norm_out", f"{side}.conv_norm_out", "plain"
        yield f"{side}.mid.block_1", f"{side}.mid_block.resnets.0", "resnet"
        yield f"{side}.mid.block_2", f"{side}.mid_block.resnets.1", "resnet"
        yield f"{side}.mid.attn_1", f"{side}.mid_block.attentions.0", "attention"
    for level in range(levels):
        for j in range(config.vae_num_res_blocks):
            yield f"encoder.down.{level}.block.{j}", f"encoder.down_blocks.{level}.resnets.{j}", \
                "resnet"
        yield (f"encoder.down.{level}.downsample.conv",
               f"encoder.down_blocks.{level}.downsamplers.0.conv", "plain")
        up = levels - 1 - level  # LDM numbers decoder levels from the bottom
        for j in range(config.vae_num_res_blocks + 1):
            yield f"decoder.up.{level}.block.{j}", f"decoder.up_blocks.{up}.resnets.{j}", "resnet"
        yield (f"decoder.up.{level}.upsample.conv", f"decoder.up_blocks.{up}.upsamplers.0.conv",
               "plain")
    yield "quant_conv", "quant_conv", "plain"
    yield "post_quant_conv", "post_quant_conv", "plain"


def convert_vae(ldm: Mapping[str, torch.Tensor], config: MVDreamConfig) -> dict[str, torch.Tensor]:
    """Autoencoder state dict in LDM names -> diffusers ``AutoencoderKL`` names."""
    pairs = sorted(_vae_prefixes(config), key=lambda p: -len(p[0]))
    out: dict[str, torch.Tensor] = {}
    for key, value in ldm.items():
        if key.startswith("loss."):
            continue  # training-only
        for old, new, kind in pairs:
            if not key.startswith(old + "."):
                continue
            rest = key[len(old) + 1:]
            if kind == "plain":
                out[f"{new}.{rest}"] = value
            else:
                table = _VAE_RESNET if kind == "resnet" else _VAE_ATTENTION
                sub, _, leaf = rest.rpartition(".")
                if sub not in table:
                    raise KeyError(f"unexpected autoencoder key {key}")
                # LDM's attention projections are 1x1 convolutions; diffusers' are linear.
                if kind == "attention" and sub != "norm" and value.ndim == 4:
                    value = value[:, :, 0, 0]
                out[f"{new}.{table[sub]}.{leaf}"] = value
            break
        else:
            raise KeyError(f"no diffusers counterpart for autoencoder key {key}")
    return out


def vae_kwargs(config: MVDreamConfig) -> dict:
    """``AutoencoderKL`` arguments equivalent to the upstream ddconfig."""
    levels = len(config.vae_ch_mult)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * levels,
        "up_block_types": ("UpDecoderBlock2D",) * levels,
        "block_out_channels": tuple(config.vae_ch * m for m in config.vae_ch_mult),
        "layers_per_block": config.vae_num_res_blocks,
        "latent_channels": config.z_channels,
        "norm_num_groups": 32,
        "sample_size": 256,
        "scaling_factor": config.scale_factor,
    }
