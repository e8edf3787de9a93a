"""Random-weight Shap-E pipelines (text and image) saved in the hub's diffusers layout.

For tests and benchmarks only; production code never imports this module.
:func:`write_tiny_weights` is the contract suite's entry (tiny sizes, one folder per model id);
``write_shap_e_text`` / ``write_shap_e_image`` build every component from a
:class:`~backend.models.shap_e.config.ShapESize` (tiny for tests, the official one for
benchmarks), fill the mesh decoder's marching-cubes buffers with the real table (a fresh decoder
holds zeros, which would extract nothing), and ``save_pretrained`` the pipeline into a folder
laid out like ``openai/shap-e`` / ``openai/shap-e-img2img``, plus the hub's extra ``renderer``
entry in model_index.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from backend.models.shap_e.config import TINY, ShapESize
from backend.models.shap_e.marching_tables import shap_e_mc_tables
from backend.models.testing.clip_tokenizer import write_clip_tokenizer

# A request that runs in about a second on a CPU: Heun's 2 steps (3 prior calls), a 16^3 grid.
TINY_PARAMETERS: dict[str, dict[str, Any]] = {
    "shap-e": {"steps": 2, "grid_size": 16},
    "shap-e-img2img": {"steps": 2, "grid_size": 16},
}


def write_tiny_weights(folder: Path, model_id: str) -> Path:
    """Tiny random ``model_id`` ("shap-e" / "shap-e-img2img") in its hub layout in ``folder``."""
    writers = {"shap-e": write_shap_e_text, "shap-e-img2img": write_shap_e_image}
    if model_id not in writers:
        raise KeyError(f"no Shap-E model {model_id!r}; this family has {', '.join(writers)}")
    return writers[model_id](folder)


def _prior(size: ShapESize, projection_dim: int, image: bool):
    from diffusers import PriorTransformer

    return PriorTransformer(
        num_attention_heads=size.prior_heads,
        attention_head_dim=size.prior_head_dim,
        num_layers=size.prior_layers,
        embedding_dim=size.latent_dim,
        num_embeddings=4 * size.renderer_hidden,
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer" if image else None,
        encoder_hid_proj_type=None,
        added_emb_type=None,
        time_embed_dim=4 * size.prior_heads * size.prior_head_dim,
        embedding_proj_dim=projection_dim,
        clip_embed_dim=2 * size.latent_dim,
    )


def _renderer(size: ShapESize):
    from diffusers.pipelines.shap_e import ShapERenderer

    hidden = size.renderer_hidden
    renderer = ShapERenderer(
        param_shapes=((hidden, 93), (hidden, hidden), (hidden, hidden), (hidden, hidden)),
        d_latent=size.latent_dim,
        d_hidden=hidden,
        n_output=12,
        background=(255.0, 255.0, 255.0),
    )
    cases, masks = shap_e_mc_tables()
    renderer.mesh_decoder.cases.copy_(torch.from_numpy(cases))
    renderer.mesh_decoder.masks.copy_(torch.from_numpy(masks))
    return renderer


def _scheduler():
    from diffusers import HeunDiscreteScheduler

    # openai/shap-e scheduler/scheduler_config.json
    return HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )


def _as_hub_bin(component: Path) -> None:
    """transformers 5 only writes safetensors; the hub repos hold ``pytorch_model.bin``."""
    from safetensors.torch import load_file

    weights = component / "model.safetensors"
    torch.save(load_file(weights), component / "pytorch_model.bin")
    weights.unlink()


def _add_hub_renderer_entry(folder: Path) -> None:
    """The hub's model_index.json also names a legacy ``renderer`` folder; mirror that."""
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["renderer"] = ["shap_e", "ShapERenderer"]
    index_path.write_text(json.dumps(index, indent=2))


def write_shap_e_text(folder: Path, size: ShapESize = TINY, seed: int = 0) -> Path:
    """Save a random ShapEPipeline into ``folder`` (created); return ``folder``."""
    from diffusers import ShapEPipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    tokenizer_dir = folder / "tokenizer"
    vocab_size = write_clip_tokenizer(tokenizer_dir)
    text_encoder = CLIPTextModelWithProjection(
        CLIPTextConfig(
            vocab_size=max(vocab_size, 49408 if size is not TINY else vocab_size),
            hidden_size=size.clip_hidden,
            intermediate_size=size.clip_intermediate,
            num_hidden_layers=size.clip_layers,
            num_attention_heads=size.clip_heads,
            projection_dim=size.clip_projection,
            max_position_embeddings=77,
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
    )
    pipeline = ShapEPipeline(
        prior=_prior(size, size.clip_projection, image=False),
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        scheduler=_scheduler(),
        shap_e_renderer=_renderer(size),
    )
    pipeline.save_pretrained(folder, safe_serialization=False)  # .bin, as on the hub
    _as_hub_bin(folder / "text_encoder")
    _add_hub_renderer_entry(folder)
    return folder


def write_shap_e_image(folder: Path, size: ShapESize = TINY, seed: int = 0) -> Path:
    """Save a random ShapEImg2ImgPipeline into ``folder`` (created); return ``folder``."""
    from diffusers import ShapEImg2ImgPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=size.clip_hidden,
            intermediate_size=size.clip_intermediate,
            num_hidden_layers=size.clip_layers,
            num_attention_heads=size.clip_heads,
            projection_dim=size.clip_projection,
            image_size=size.image_size,
            patch_size=size.patch_size,
        )
    )
    processor = CLIPImageProcessor(
        crop_size={"height": size.image_size, "width": size.image_size},
        size={"shortest_edge": size.image_size},
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    pipeline = ShapEImg2ImgPipeline(
        prior=_prior(size, size.clip_hidden, image=True),
        image_encoder=image_encoder,
        image_processor=processor,
        scheduler=_scheduler(),
        shap_e_renderer=_renderer(size),
    )
    pipeline.save_pretrained(folder, safe_serialization=False)  # .bin, as on the hub
    _as_hub_bin(folder / "image_encoder")
    _add_hub_renderer_entry(folder)
    return folder
