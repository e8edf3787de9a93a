"""The add-on's operators, by role: generating, jobs on the scene's meshes, acting on jobs, the
connection, presets.

``CLASSES`` is the order in which they are registered.
"""

from . import connection, generate, jobs, mesh_jobs, presets, shelf

CLASSES = (*connection.CLASSES, *generate.CLASSES, *mesh_jobs.CLASSES, *jobs.CLASSES,
           *presets.CLASSES, *shelf.CLASSES)
