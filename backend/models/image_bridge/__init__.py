"""Text -> image (any diffusers text-to-image pipeline) -> 3D (any image model of ours)."""
