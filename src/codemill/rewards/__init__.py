"""Layer 3: grading from a diff in a fresh sandbox."""
