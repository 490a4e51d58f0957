"""Layer 1: repository intake: local dirs, git repos and PyPI sdists to snapshots."""
