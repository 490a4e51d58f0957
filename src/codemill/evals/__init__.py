"""Layer 4.5: suites, pass@k with intervals, reports."""
