"""TripoSR (stabilityai/TripoSR): single image -> triplane NeRF -> mesh, our own implementation.

Modules: config (official config.yaml), vit (DINO image tokenizer), transformer (backbone),
triplane (tokens, upsampler, NeRF MLP, field query), model (the whole network), loading
(official checkpoint formats), isosurface (marching cubes), adapter (the ModelAdapter).
"""
