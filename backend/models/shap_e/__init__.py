"""Shap-E (OpenAI, MIT): text or image -> implicit 3D function -> coloured mesh, via diffusers."""
