"""Hunyuan3D-2 (Tencent): image(s) -> 3D shape by flow matching in a ShapeVAE's latent space.

Upstream: https://github.com/Tencent/Hunyuan3D-2 (hy3dgen 2.0.2, the reference of the parity
tests); weights: the hub repos ``tencent/Hunyuan3D-2mini``, ``tencent/Hunyuan3D-2`` and
``tencent/Hunyuan3D-2mv`` (shape), ``tencent/Hunyuan3D-2`` (paint). Licence: Tencent Hunyuan 3D
Community License (not for the EU, the UK or South Korea; see ``adapter.LICENSE``). A clean
reimplementation that loads the official checkpoints; no upstream code is copied.

Shape modules:
    config        official ``config.yaml`` -> frozen dataclasses; the tiny config; VIEW_INDEX
    loading       reads the official variant / VAE folders (safetensors) onto a device
    conditioner   DINOv2 image encoder (single- and multi-view)
    dit           the flow-matching DiT
    vae           the ShapeVAE: latent transformer and occupancy decoder
    sampling      flow-matching Euler steps (plain and consistency schedules)
    volume        grids, octree decoding, marching cubes
    key_selection, flashvdm   FlashVDM's decode with adaptive key selection
    preprocess    cut-out image -> the conditioner's framed, white-backed input
    pipeline      one run, numbered steps -> ShapeResult
    adapter       the cards (2mini, 2, 2mv) and the template's hooks
    testing       tiny random weights in the official layout (tests and benchmarks only)
Paint modules (``texture="paint"``, Hunyuan3D-Paint): paint_loading, paint_unet, paint_delight,
paint_multiview, paint_raster, paint_bake, paint_texture.
"""
