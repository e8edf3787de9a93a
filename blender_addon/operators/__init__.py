"""The add-on's operators, by role: generating, acting on jobs, the connection, presets.

``CLASSES`` is the order in which they are registered.
"""

from . import connection, generate, jobs, presets, shelf

CLASSES = (*connection.CLASSES, *generate.CLASSES, *jobs.CLASSES, *presets.CLASSES, *shelf.CLASSES)
