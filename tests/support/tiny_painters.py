"""Tiny random weights of every model that paints meshes, and the backend flags that use them.

The add-on's tests run in Blender's Python, which has no torch: they run this module in the
backend's environment (``python -m tests.support.tiny_painters ROOT``) and read the ``serve``
arguments it prints as JSON. What it writes, under ROOT: Hunyuan3D-2mini (shape, plus the
``paint`` component: delight and paint), the image-bridge's tiny SDXL-Turbo (prompt -> picture
-> painter) and TRELLIS.2-4B with all of its components (``encoder`` is the one texturing needs).
Each writer is the model family's own ``testing`` module; nothing here is a fake.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HUNYUAN = "hunyuan3d-2mini"
BRIDGE = "image-bridge"
TRELLIS2 = "trellis2-4b"
# Hunyuan paint settings that run in seconds on a CPU (the tiny paint model at 16 px views).
TINY_PAINT = {"paint_steps": 1, "delight_steps": 1, "paint_view_size": 16}
# The bridge: one picture step at 32 px, no cut-out (a random picture has no subject).
TINY_BRIDGE = {"steps": 1, "image_size": 32, "background": "none"}


def write_all(root: Path, trellis2: bool = True) -> list[str]:
    """Write the tiny weights under ``root`` -> the ``--weights`` arguments of ``serve``."""
    from backend.models.hunyuan3d.testing import write_tiny_components, write_tiny_weights
    from backend.models.image_bridge.testing import write_tiny_weights as write_bridge

    shape = write_tiny_weights(root / "hunyuan-shape", HUNYUAN)
    paint = write_tiny_components(root / "hunyuan-components", HUNYUAN)["paint"]
    bridge = write_bridge(root / "bridge")
    pairs = [(HUNYUAN, shape), (f"{HUNYUAN}:paint", paint), (BRIDGE, bridge)]
    if trellis2:
        from backend.models.trellis2 import testing as trellis2_testing

        pairs.append((TRELLIS2, trellis2_testing.write_tiny_weights(root / "trellis2")))
        components = trellis2_testing.write_tiny_components(root / "trellis2-components")
        pairs += [(f"{TRELLIS2}:{name}", folder) for name, folder in components.items()]
    return [arg for key, folder in pairs for arg in ("--weights", f"{key}={folder}")]


if __name__ == "__main__":
    print(json.dumps(write_all(Path(sys.argv[1]))))
