"""Stable Fast 3D (SF3D): one image -> UV-textured PBR mesh, our own implementation.

Upstream: Stability-AI/stable-fast-3d (code) and the gated ``stabilityai/stable-fast-3d`` hub
repo (weights), both under the Stability AI Community License; its ``config.yaml`` +
``model.safetensors`` load here unchanged (same key names and shapes).

Modules:
- config: the official config.yaml -> frozen dataclasses (SF3DConfig and its parts);
- loading: reads (and writes) the official checkpoint layout, strictly; upstream's tet grids;
- dinov2, clip, backbone, heads: the network parts (image tokenizer, material estimator,
  two-stream transformer; camera embedder, triplane tokens, upsampler, decoder heads);
- network: the whole SF3DNetwork, module names as the checkpoint's;
- isosurface: the tet grid and marching tetrahedra (DMTet);
- preprocess: SF3D's framing of the cut-out image into conditioning tensors;
- pipeline: the numbered steps of one run (framing, encode, field, surface) and the point
  fields the geometry pipeline bakes;
- adapter: the card and hooks (imports torch only when a model loads);
- testing: tiny random weights in the official layout and a fast request, for tests.
"""
