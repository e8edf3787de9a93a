"""MVDream (ByteDance; github.com/bytedance/MVDream, weights MVDream/MVDream, CreativeML
OpenRAIL-M): text -> four consistent views, our diffusers-style build, then 3D through another
installed model (the reconstructor) and a texture from the views.

Modules: config (upstream's sd-v2-base.yaml as a dataclass, plus the tiny size), convert (the
checkpoint's LDM key layout -> our modules' keys), loading (reads sd-v2.1-base-4view.pt into
the modules), unet + attention (the multi-view UNet), text_encoder + tokenizer (OpenCLIP's text
tower and tokenizer), camera (the views' camera embedding), sampler (DDIM with guidance),
pipeline (prompt -> views), cutout (the views' subjects through the shared background module),
back_projection (the views as a colour field on any mesh), adapter (the card and its hooks),
testing (tiny seeded checkpoints in the official layout; tests only).
"""
