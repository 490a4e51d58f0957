"""Layer 6: the HTML report of training and evals (``codemill report``)."""
