"""TRELLIS.2 (Microsoft, MIT): image to PBR-textured mesh through native sparse voxel latents.

Upstream: github.com/microsoft/TRELLIS.2, weights microsoft/TRELLIS.2-4B. A run conditions on
DINOv3, samples a dense 16^3 structure latent (decoded by TRELLIS v1's structure decoder), a
sparse shape latent and a sparse texture latent (rectified-flow DiTs with RoPE), and decodes
them with the SC-VAE decoders to an O-Voxel flexible dual grid (the mesh) and PBR voxels (base
colour, metallic, roughness, alpha) - see pipeline.py. Pure PyTorch on our sparse layer
(``backend.models.sparse``: RoPE, Spatial2Channel / Channel2Spatial, ConvNeXt blocks), so it
runs without flash-attn, FlexGEMM, CuMesh, o-voxel or nvdiffrast.

Modules: config (pipeline.json), loading (strict loading in stored dtypes), transformer and
flows (the three DiTs), sc_vae (the decoders), sampler (the guidance form), dinov3 (framing +
conditioner), dual_grid (mesh extraction), pbr_field (the bake's fields), pipeline, adapter,
testing.
"""
