"""The run: lifecycle, checkpoints, the lock on its directory."""
