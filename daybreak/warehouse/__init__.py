"""The DuckDB warehouse: dbt run in-process, its per-market files, the writer lock, backups.

May import the shared modules only (daybreak.clock, config, errors, files, logs, state).
"""
