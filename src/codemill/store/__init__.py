"""Layer 1: the Iceberg ledger, the only importer of pyiceberg.

- ``ledger``   the ``Ledger`` object: open, read, query (DuckDB), writers, runs
- ``writer``   ``BatchWriter``: batched appends, retries, schema evolution, expiry
- ``catalog``  catalog properties from settings, opening it, clear ``CatalogError``\\s
- ``schemas``  every table's explicit Arrow schema (and its Iceberg form)
- ``rows``     core records to rows (imports no pyarrow: cheap for domain code)
- ``coerce``   rows to Arrow tables, losslessly or with a clear error
- ``runs``     rows and listing of the append-only ``runs`` table

Importing this package imports nothing heavy; pyiceberg, pyarrow and DuckDB load with
the submodules that need them.
"""
