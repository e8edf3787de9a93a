"""MVDream's configuration: the official ``sd-v2-base.yaml`` values as a dataclass.

The checkpoint ``sd-v2.1-base-4view.pt`` ships without a config; upstream pairs it with its
``configs/sd-v2-base.yaml``. :data:`SD21_BASE_4VIEW` holds that file's numbers (UNet, VAE,
OpenCLIP ViT-H-14 text tower, noise schedule); :meth:`MVDreamConfig.from_yaml` reads the
same fields from a yaml file when one is given (omegaconf), and :data:`TINY` is the test size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

CHECKPOINT = "sd-v2.1-base-4view.pt"  # the hub repo's one file (MVDream/MVDream)
CONFIG_FILE = "sd-v2-base.yaml"  # optional: upstream's config beside the checkpoint


@dataclass(frozen=True)
class MVDreamConfig:
    # UNet (MultiViewUNetModel params)
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_head_channels: int = 64
    context_dim: int = 1024
    camera_dim: int = 16
    in_channels: int = 4
    out_channels: int = 4
    norm_groups: int = 32  # GroupNorm32 in the LDM code
    # Autoencoder (first_stage_config.ddconfig)
    vae_ch: int = 128
    vae_ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    vae_num_res_blocks: int = 2
    z_channels: int = 4
    scale_factor: float = 0.18215
    # OpenCLIP ViT-H-14 text tower; "penultimate" layer output
    text_width: int = 1024
    text_layers: int = 24
    text_heads: int = 16
    context_length: int = 77
    vocab_size: int = 49408
    text_embed_dim: int = 1024  # pooled projection width (unused by MVDream, in the file)
    # Noise schedule (linear in sqrt(beta), as LDM)
    timesteps: int = 1000
    linear_start: float = 0.00085
    linear_end: float = 0.012

    @property
    def attention_levels(self) -> tuple[bool, ...]:
        """Whether each UNet level has (multi-view) transformers: ds = 2**level in the set."""
        return tuple(2**level in self.attention_resolutions
                     for level in range(len(self.channel_mult)))

    @property
    def latent_factor(self) -> int:
        return 2 ** (len(self.vae_ch_mult) - 1)

    @classmethod
    def from_yaml(cls, path: Path) -> MVDreamConfig:
        """Read an upstream-format config (``model.params.*``) into a config."""
        from omegaconf import OmegaConf

        params = OmegaConf.to_container(OmegaConf.load(path), resolve=True)["model"]["params"]
        unet = params["unet_config"]["params"]
        vae = params["first_stage_config"]["params"]["ddconfig"]
        return cls(
            model_channels=unet["model_channels"],
            channel_mult=tuple(unet["channel_mult"]),
            num_res_blocks=unet["num_res_blocks"],
            attention_resolutions=tuple(unet["attention_resolutions"]),
            num_head_channels=unet["num_head_channels"],
            context_dim=unet["context_dim"],
            camera_dim=unet.get("camera_dim", 16),
            in_channels=unet["in_channels"],
            out_channels=unet["out_channels"],
            vae_ch=vae["ch"],
            vae_ch_mult=tuple(vae["ch_mult"]),
            vae_num_res_blocks=vae["num_res_blocks"],
            z_channels=vae["z_channels"],
            scale_factor=params.get("scale_factor", 0.18215),
            timesteps=params.get("timesteps", 1000),
            linear_start=params.get("linear_start", 0.00085),
            linear_end=params.get("linear_end", 0.012),
        )


SD21_BASE_4VIEW = MVDreamConfig()
OPEN_CLIP_HEAD_WIDTH = 64  # every OpenCLIP text tower uses 64-wide heads


def with_text_tower_of(config: MVDreamConfig, state: dict) -> MVDreamConfig:
    """``config`` with the text-tower sizes read off a checkpoint's tensors.

    Upstream's yaml names the tower only by its OpenCLIP architecture; its sizes are in the
    checkpoint (width and vocabulary from the token embedding, depth from the block count,
    heads from OpenCLIP's fixed 64-wide heads).
    """
    prefix = "cond_stage_model.model."
    embedding = state.get(prefix + "token_embedding.weight")
    if embedding is None:
        return config
    blocks = {key.split(".")[4] for key in state
              if key.startswith(prefix + "transformer.resblocks.")}
    vocab, width = embedding.shape
    return replace(config, vocab_size=int(vocab), text_width=int(width),
                   text_layers=len(blocks), text_heads=max(1, int(width) // OPEN_CLIP_HEAD_WIDTH),
                   context_length=int(state[prefix + "positional_embedding"].shape[0]),
                   text_embed_dim=int(state[prefix + "text_projection"].shape[1]))
# A few thousand weights with every structural feature of the full model.
TINY = replace(
    SD21_BASE_4VIEW,
    model_channels=32,
    channel_mult=(1, 2, 2),  # the last level has no transformers, as in the full model
    num_res_blocks=2,
    attention_resolutions=(1, 2),
    num_head_channels=8,
    context_dim=128,
    norm_groups=32,
    vae_ch=32,
    vae_ch_mult=(1, 2),
    vae_num_res_blocks=1,
    text_width=128,
    text_layers=2,
    text_heads=2,
    vocab_size=514,
    text_embed_dim=32,
)
