"""Layer 3: the agent loop, its tools and model backends. Imports only codemill.core."""
