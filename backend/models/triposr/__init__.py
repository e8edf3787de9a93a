"""TripoSR: one image -> triplane NeRF -> coloured mesh, our own implementation.

Upstream: VAST-AI-Research/TripoSR (code, MIT) and the ``stabilityai/TripoSR`` hub repo
(weights, MIT), whose ``config.yaml`` + ``model.ckpt`` load here unchanged.

Modules:
- config: the official config.yaml -> a frozen TripoSRConfig (and the DINO ViT sizes);
- loading: reads (and writes) the official checkpoint layout, strictly;
- vit, transformer, triplane: the network parts (DINO image tokenizer, 1D transformer
  backbone; plane tokens, upsampler, NeRF MLP and the field query);
- network: the whole TripoSRNet, module names as the checkpoint's prefixes;
- isosurface, torch_marching_cubes: the density grid and marching cubes (CPU or GPU);
- pipeline: the numbered steps of one run (framing, encode, field, surface, colour);
- adapter: the card and hooks (imports torch only when a model loads);
- testing: tiny random weights in the official layout and a fast request, for tests.
"""
