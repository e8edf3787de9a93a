"""What we read from a Shap-E pipeline folder before loading it, and the sizes we build at.

``ShapEConfig.from_folder`` reads ``model_index.json`` (which pipeline, which components) and
the renderer's ``config.json`` (latent width, MLP width) so a wrong or half-downloaded folder is
reported as such, with the files at fault, before any weights are read. :class:`ShapESize`
holds the few numbers that fix every component's shape: :data:`FULL_TEXT` / :data:`FULL_IMAGE`
are the hub repos' configurations, :data:`TINY` the test size (testing.py builds from them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared_protocol.errors import ErrorCode, ProtocolError

TEXT_PIPELINE = "ShapEPipeline"
IMAGE_PIPELINE = "ShapEImg2ImgPipeline"
# Components each pipeline needs on disk (folder names in the hub repos).
REQUIRED_COMPONENTS = {
    TEXT_PIPELINE: ("prior", "text_encoder", "tokenizer", "scheduler", "shap_e_renderer"),
    IMAGE_PIPELINE: ("prior", "image_encoder", "image_processor", "scheduler", "shap_e_renderer"),
}


@dataclass(frozen=True)
class ShapEConfig:
    """The parts of a Shap-E pipeline's configuration the adapter relies on."""

    pipeline_class: str
    latent_dim: int  # renderer d_latent == prior embedding_dim
    mlp_width: int  # the implicit function's hidden width
    latent_tokens: int  # prior num_embeddings

    @classmethod
    def from_folder(cls, folder: Path, model_id: str) -> ShapEConfig:
        index_path = folder / "model_index.json"
        if not index_path.is_file():
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{model_id}: no model_index.json in {folder}",
                hint=f"run `dreamcad-backend download {model_id}`",
            )
        index = json.loads(index_path.read_text())
        pipeline_class = index.get("_class_name", "")
        if pipeline_class not in REQUIRED_COMPONENTS:
            raise ProtocolError(
                ErrorCode.MODEL_FAILED,
                f"{model_id}: {index_path} describes {pipeline_class!r}, not a Shap-E pipeline",
                hint=f"point DREAMCAD_WEIGHTS_* at the {model_id} repo folder",
            )
        missing = [c for c in REQUIRED_COMPONENTS[pipeline_class] if not (folder / c).is_dir()]
        if missing:
            raise ProtocolError(
                ErrorCode.WEIGHTS_MISSING,
                f"{model_id}: {folder} lacks the component folders {', '.join(missing)}",
                hint=f"run `dreamcad-backend download {model_id}`",
            )
        renderer = json.loads((folder / "shap_e_renderer" / "config.json").read_text())
        prior = json.loads((folder / "prior" / "config.json").read_text())
        return cls(
            pipeline_class=pipeline_class,
            latent_dim=int(renderer.get("d_latent", 1024)),
            mlp_width=int(renderer.get("d_hidden", 256)),
            latent_tokens=int(prior.get("num_embeddings", 1024)),
        )


@dataclass(frozen=True)
class ShapESize:
    """The handful of numbers that fix every component's shape."""

    latent_dim: int  # prior embedding_dim == renderer d_latent
    renderer_hidden: int  # MLP width; the latent has 4 * renderer_hidden tokens
    prior_heads: int
    prior_head_dim: int
    prior_layers: int
    clip_hidden: int
    clip_layers: int
    clip_heads: int
    clip_intermediate: int
    clip_projection: int
    image_size: int = 224
    patch_size: int = 14


TINY = ShapESize(16, 8, 2, 8, 1, 16, 1, 2, 32, 16, image_size=32, patch_size=8)
# openai/shap-e prior/config.json, text_encoder (CLIP ViT-L/14 text), shap_e_renderer defaults.
FULL_TEXT = ShapESize(1024, 256, 16, 64, 24, 768, 12, 12, 3072, 768)
# openai/shap-e-img2img: the prior has 8 heads of 128, the encoder is CLIP ViT-L/14 vision.
FULL_IMAGE = ShapESize(1024, 256, 8, 128, 24, 1024, 24, 16, 4096, 1024)
