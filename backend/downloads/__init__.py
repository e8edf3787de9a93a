"""Model weights downloaded as jobs: the hub client, the resumable transfer and the manager."""
