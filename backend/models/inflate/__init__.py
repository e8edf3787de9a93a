"""Built-in ``inflate`` image-to-3D: a silhouette inflated into a rounded, textured solid."""
