"""Layer 0: frozen records, Protocols, the exception tree, content ids and typed config.

Everything above imports from here; this package imports only the standard library and
pydantic (enforced by import-linter).
"""
