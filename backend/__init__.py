"""The Dream CAD backend: a headless service that turns prompts and images into 3D assets.

Layers, imported one way only: ``cli`` -> ``server`` -> ``handlers`` -> ``jobs`` -> ``models``
-> ``geometry`` (import-linter checks it: ``[tool.importlinter]`` in pyproject.toml). Nothing
here imports bpy; the GPU work runs in ``jobs.worker`` threads, never in the server loop.
"""

from importlib import metadata

try:
    __version__ = metadata.version("dreamcad")
except metadata.PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
