"""The add-on's side of the wire, free of bpy so it can be used and tested without Blender.

``session.Session`` is the non-blocking conversation with one backend; ``records`` holds the
plain data it reports (job records and notifications).
"""

from .records import ConnectionState, JobRecord
from .session import Session

__all__ = ["ConnectionState", "JobRecord", "Session"]
