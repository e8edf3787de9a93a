"""Text -> image -> 3D: any diffusers text-to-image pipeline (SDXL-Turbo by default,
stabilityai/sdxl-turbo, Stability AI non-commercial community licence), then any installed
image model of ours (the built-in inflate by default) for the 3D step.

Modules: text_to_image (find, load and run a diffusers text-to-image pipeline from local
files), adapter (the card and its hooks; the image model comes from the worker's model cache),
testing (tiny random SDXL-Turbo and Stable Diffusion pipelines in the hub layout; tests only).
"""
