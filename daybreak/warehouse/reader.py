"""Reading the warehouse's tables, whichever engine holds it, through one DuckDB connection.

DuckDB: the warehouse file, read-only. Spark ([warehouse] engine = "spark"): every table is a
folder of Parquet files under the Spark warehouse (`<dir>/<schema>.db/<table>/`, partition
folders included), which an in-memory DuckDB presents as views in schema `main`. So the exports
and the row counts read a Spark warehouse with the same SQL as a DuckDB one, and Hyper gets the
same Parquet either way.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from daybreak.config import Settings


class WarehouseMissing(Exception):
    """No warehouse to read (not built yet), or one this machine cannot see."""


def spark_tables(settings: Settings) -> dict[str, Path]:
    """The Spark warehouse's tables (name -> folder) that hold Parquet files."""
    schema = settings.spark_warehouse / f"{settings.warehouse.spark.schema_name}.db"
    if not schema.is_dir():
        return {}
    return {
        folder.name: folder for folder in sorted(schema.iterdir())
        if folder.is_dir() and next(folder.rglob("*.parquet"), None) is not None
    }  # fmt: skip


def open_reader(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only view of the warehouse's tables in schema `main`."""
    if settings.warehouse.engine != "spark":
        warehouse = settings.paths.warehouse
        if not warehouse.exists():
            raise WarehouseMissing(f"warehouse {warehouse} does not exist: build it first")
        return duckdb.connect(str(warehouse), read_only=True)
    tables = spark_tables(settings)
    if not tables:
        raise WarehouseMissing(
            f"no Spark tables under {settings.spark_warehouse} ([warehouse.spark] warehouse_dir):"
            " build the warehouse first, or point warehouse_dir at where Spark keeps them"
        )
    con = duckdb.connect()
    for name, folder in tables.items():
        files = (folder.as_posix() + "/**/*.parquet").replace("'", "''")
        con.execute(
            f"CREATE VIEW main.\"{name}\" AS SELECT * FROM read_parquet('{files}', "
            "hive_partitioning = true, union_by_name = true)"
        )
    return con
