"""Stable Fast 3D (SF3D): single image -> UV-textured PBR mesh, our own implementation.

The networks load Stability AI's official ``model.safetensors`` unchanged (same key names and
shapes). config.py reads the official ``config.yaml``; dinov2.py, clip.py, backbone.py and
heads.py are the network parts; network.py composes them; isosurface.py extracts the mesh by
marching tetrahedra; loading.py reads checkpoints; preprocess.py prepares the input image;
adapter.py plugs the model into the backend.
"""
