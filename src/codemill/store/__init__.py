"""Layer 1: the Iceberg ledger, the only importer of pyiceberg."""
