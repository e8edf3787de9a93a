"""The add-on's user interface: sidebar panels, the job UIList and the preferences' drawing.

Draw code only: reads settings and live state, calls no I/O, acts only through operators.
"""

from . import compare_panel, job_list, mesh_panel, panels, preferences_view, shelf_panel

CLASSES = (*panels.CLASSES, *compare_panel.CLASSES, *mesh_panel.CLASSES, *shelf_panel.CLASSES,
           *job_list.CLASSES)
__all__ = ["CLASSES", "preferences_view"]
