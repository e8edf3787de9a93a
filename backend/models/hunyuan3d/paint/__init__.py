"""Hunyuan3D-Paint, the texture stage of the Hunyuan3D-2 models (``texture=paint``).

delight (the input view's lighting removed), loading and unet (the multi-view "2.5D" UNet from
its official diffusers folder), render (the six paint cameras and their normal / position
condition maps), multiview (the views' diffusion sampling) and texture (the stage end to end:
mesh + image -> ``PaintedViews`` that the geometry pipeline bakes).
"""
