"""Shap-E (OpenAI, MIT; github.com/openai/shap-e, run through diffusers' Shap-E pipelines).

Text or image -> a latent for an implicit 3D function (a small MLP of signed distance and
colour) -> a coloured triangle mesh. Two model ids: ``shap-e`` (openai/shap-e) and
``shap-e-img2img`` (openai/shap-e-img2img).

Modules: config (what a hub folder holds; the component sizes, official and tiny), loading
(reads the hub folder through ``from_pretrained``, repairs empty marching-cubes tables),
marching_tables (the decoder's table, derived), mesh (latent -> surface, colours, colour field),
pipeline (one run: sample, extract, check), adapter (the two cards and their hooks), testing
(tiny random pipelines in the hub layout; tests only).
"""
