"""Layer 2: environment builder and sandboxes (bubblewrap by default)."""
