"""Scale-out on Ray (``serve --ray``): job workers as Ray actors, one per GPU of a cluster.

Imported only when ``serve --ray`` is given, so a single machine never imports Ray. The ZeroMQ
front door and the SQLite job store stay where they are; this package swaps the local worker
threads for a dispatcher (dispatcher.py) that places claimed jobs on actors (actor.py) by the
rules of backend/jobs/placement.py.
"""
