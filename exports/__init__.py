"""Tableau exports: DuckDB -> Parquet -> Hyper -> Tableau Server (arrives with its own issue)."""
