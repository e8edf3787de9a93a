"""The add-on's side of the wire, free of bpy so it can be used and tested without Blender.

``session.Session`` is the non-blocking conversation with one backend; ``job_tracker`` folds
what the backend says into job records; ``records`` holds the plain data reported (job records
and notifications); ``compatibility`` words protocol version mismatches.
"""

from .records import ConnectionState, JobRecord
from .session import Session

__all__ = ["ConnectionState", "JobRecord", "Session"]
