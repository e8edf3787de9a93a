"""Jobs: the SQLite store (the only SQL), the queue's state machine, and the GPU workers."""
