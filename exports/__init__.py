"""Tableau exports: DuckDB -> Parquet -> Hyper -> Tableau Server (duckdb_to_tableau_server.py)."""
