"""The Dream CAD backend: a headless service that turns prompts and images into 3D assets.

Layers, imported one way only: ``cli`` -> ``server`` -> ``handlers`` -> ``jobs`` -> ``models``
-> ``geometry`` (import-linter checks it: ``[tool.importlinter]`` in pyproject.toml). Nothing
here imports bpy; the GPU work runs in ``jobs.worker`` threads, never in the server loop.
"""


def __getattr__(name: str) -> str:
    # ``__version__`` on first use: importlib.metadata costs ~30 ms of every process's start,
    # and ``dreamcad-backend postprocess`` (timed end to end) never asks for it.
    if name != "__version__":
        raise AttributeError(f"module 'backend' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("dreamcad")
    except metadata.PackageNotFoundError:  # running from a source tree without an install
        version = "0.0.0+source"
    globals()["__version__"] = version
    return version
