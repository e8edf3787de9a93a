"""Render a preview PNG of the Dream CAD objects in the open scene (Cycles on the CPU).

Used by batch_generate.py --render and so by the README's main job. Adds a camera that frames
every object of the "Dream CAD" collection (or another, e.g. "Dream CAD Compare") from the
front-left, a sun and a grey world, then
renders a small image with few samples: a picture to look at, made in seconds on a CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

RESOLUTION = (640, 480)
SAMPLES = 16
COLLECTION = "Dream CAD"


def render_preview(bpy, path: Path, samples: int = SAMPLES, collection: str = COLLECTION) -> Path:
    """Render ``collection``'s objects (a compare's row: its results and their labels)."""
    from mathutils import Vector

    scene = bpy.context.scene
    objects = [o for o in bpy.data.collections[collection].all_objects
               if o.type in ("MESH", "FONT")]
    corners = [o.matrix_world @ Vector(c) for o in objects for c in o.bound_box]
    low = Vector([min(c[i] for c in corners) for i in range(3)])
    high = Vector([max(c[i] for c in corners) for i in range(3)])
    centre, radius = (low + high) / 2, max((high - low).length / 2, 1e-3)

    camera_data = bpy.data.cameras.new("Dream CAD Preview")
    camera = bpy.data.objects.new("Dream CAD Preview", camera_data)
    scene.collection.objects.link(camera)
    direction = Vector((0.6, -1.0, 0.55)).normalized()
    distance = radius / math.sin(camera_data.angle / 2) * 1.1
    camera.location = centre + direction * distance
    camera.rotation_euler = (-direction).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera

    sun = bpy.data.objects.new("Dream CAD Sun", bpy.data.lights.new("Dream CAD Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (math.radians(40), math.radians(10), math.radians(30))
    scene.collection.objects.link(sun)
    if scene.world is None:
        scene.world = bpy.data.worlds.new("Dream CAD World")
    scene.world.color = (0.35, 0.35, 0.38)
    if scene.world.use_nodes:
        background = scene.world.node_tree.nodes.get("Background")
        if background is not None:
            background.inputs["Color"].default_value = (0.35, 0.35, 0.38, 1.0)

    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = samples
    scene.cycles.use_denoising = False  # OIDN is slow on 2 cores; 16 samples look fine small
    scene.render.resolution_x, scene.render.resolution_y = RESOLUTION
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    path.parent.mkdir(parents=True, exist_ok=True)
    scene.render.filepath = str(path.resolve())
    bpy.ops.render.render(write_still=True)
    return path
