"""The protocol's job-option defaults and ranges, in a module of constants alone.

The geometry pipeline and ``dreamcad-backend postprocess`` need these few numbers, not the
message classes: importing ``messages`` creates ~80 dataclasses (40-60 ms on 2 shared cores)
in a process that is timed end to end (issue 18). ``messages`` re-exports every name here, so
either import gives the same objects.
"""

from __future__ import annotations

from typing import Final

MIN_FACES, MAX_FACES, DEFAULT_FACES = 500, 500_000, 20_000
TEXTURE_SIZES = (256, 512, 1024, 2048, 4096)
DEFAULT_TEXTURE_SIZE = 1024
DEFAULT_FORMAT: Final = "glb"  # Literal["glb"]: one of messages.OutputFormat
MAX_MESH_FACES = 2_000_000  # triangles in an input mesh (after splitting polygons)
