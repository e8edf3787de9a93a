"""TRELLIS (Microsoft, MIT): image, multi-view and text to 3D through structured 3D latents.

Upstream: github.com/microsoft/TRELLIS, weights microsoft/TRELLIS-image-large and
TRELLIS-text-{base,large,xlarge} on the Hugging Face hub. A run conditions on DINOv2 (image) or
CLIP (text), samples a dense 16^3 structure latent (sparse-structure flow), decodes the occupied
64^3 voxels, samples a sparse structured latent on them (SLat flow) and decodes it to a mesh
(FlexiCubes) - see pipeline.py. Everything is pure PyTorch on our own sparse layer
(``backend.models.sparse``), so it runs on the CPU as well as on CUDA.

Modules: config (the official JSON files as dataclasses, tiny configs), loading (strict
loading and writing of the official layout, the fp16 torso rule), dinov2 and conditioners
(image framing + DINOv2, CLIP text), transformer (the blocks both flows and the decoders share,
over dense or sparse tokens), ss_flow (dense DiT), ss_decoder (dense conv decoder, occupied
voxels), sampler (Euler flow sampler with guidance interval, multi-image modes), slat_flow
(sparse U-shaped DiT), slat_decoders (swin trunk + mesh, Gaussian and radiance-field heads),
flexicubes_tables / flexicubes / mesh_extraction (sparse FlexiCubes, upstream's
SparseFeatures2Mesh), colour_field (the decoded colour for the bake), gaussian_ply (3DGS .ply),
pipeline (one run's numbered steps), adapter (the model cards), testing (tiny random models for
tests).
"""
