"""Layer 5: assets, the DAG, cache keys and executors; writes the ledger."""
