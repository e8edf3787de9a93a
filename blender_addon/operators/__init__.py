"""The add-on's operators, by role: generating, comparing models, jobs on the scene's meshes,
acting on jobs, the connection, presets, the model shelf.

``CLASSES`` is the order in which they are registered.
"""

from . import compare, connection, generate, jobs, mesh_jobs, presets, shelf

CLASSES = (*connection.CLASSES, *generate.CLASSES, *mesh_jobs.CLASSES, *jobs.CLASSES,
           *presets.CLASSES, *shelf.CLASSES, *compare.CLASSES)
