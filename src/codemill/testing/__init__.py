"""Layer 2: test runners and result parsers."""
