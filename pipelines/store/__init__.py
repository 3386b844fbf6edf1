"""The lake and its state: tables, Delta and Parquet writes, manifests and leases, incremental state, catalog, files on any Hadoop path."""
