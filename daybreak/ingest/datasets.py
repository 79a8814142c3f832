"""The landing files daybreak knows: where they sit in the container, their columns and types.

One spec per kind of file; the ingestion dataflow syncs them and the demo generator writes them,
so both agree on the layout by construction.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CsvDataset:
    """A family of CSV blobs sharing one layout and schema.

    A dataset owns every blob under its `prefix`: a blob there that does not match
    `blob_pattern` is reported, never silently ignored.
    `blob_pattern` matches the part of the blob name after `prefix`; a named group `date`
    (YYYYMMDD) makes the dataset daily. `lake_path` is formatted with `market`, `year`
    (from the date) and `stem` (the blob's file name without extension).
    """

    name: str
    prefix: str
    blob_pattern: str
    columns: tuple[tuple[str, str], ...]
    lake_path: str
    optional: frozenset[str] = frozenset()

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def daily(self) -> bool:
        return "(?P<date>" in self.blob_pattern

    def lake_columns(self) -> list[LakeColumn]:
        """Each column of the dataset's lake files and where it comes from: the CSV column the
        sync reads it from (typed, text cleaned by `cleaned`), or a value the sync adds."""
        from_csv = [
            LakeColumn(
                name,
                kind,
                name,
                "computed" if kind == "VARCHAR" else "cast",
                cleaned(name, kind) if kind == "VARCHAR" else f"read as {kind}",
            )
            for name, kind in self.columns
        ]
        added = {**(DAILY_SYNC_COLUMNS if self.daily else {}), **SYNC_COLUMNS}
        return from_csv + [
            LakeColumn(name, kind, None, "constant", origin)
            for name, (kind, origin) in added.items()
        ]

    def match(self, blob_name: str) -> re.Match[str] | None:
        return re.fullmatch(re.escape(self.prefix) + self.blob_pattern, blob_name)

    @staticmethod
    def file_date(match: re.Match[str]) -> dt.date | None:
        """The date in a daily blob's name; ValueError if it is no real date."""
        raw = match.groupdict().get("date")
        if raw is None:
            return None
        return dt.datetime.strptime(raw, "%Y%m%d").date()


@dataclass(frozen=True)
class LakeColumn:
    """One column of a dataset's lake files: its type, the CSV column it is read from (None for a
    value the sync adds), how (copied, cast, computed, constant) and the expression."""

    name: str
    type: str
    csv_column: str | None
    how: str
    expression: str


# What the sync writes beside the CSV's columns (daybreak/ingest/sync.py `_extras`): name ->
# (type, where the value comes from). Daily datasets carry their market and day as well.
DAILY_SYNC_COLUMNS: dict[str, tuple[str, str]] = {
    "market": ("VARCHAR", "the market of the sync asset"),
    "file_date": ("DATE", "the date in the blob's name"),
}
SYNC_COLUMNS: dict[str, tuple[str, str]] = {
    "source_blob": ("VARCHAR", "the blob's name in the container"),
    "synced_at": ("TIMESTAMP", "the time of the sync that wrote the file"),
}


def cleaned(column: str, kind: str, table: str = "") -> str:
    """The SQL the sync applies to a CSV column: trailing spaces and blank strings in text are
    export noise, not values (every other type is parsed as declared)."""
    source = f'{table}."{column}"' if table else f'"{column}"'
    return f"nullif(trim({source}), '')" if kind == "VARCHAR" else source


ORDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("order_id", "VARCHAR"),
    ("order_line", "INTEGER"),
    ("order_ts", "TIMESTAMP"),
    ("customer_id", "VARCHAR"),
    ("sku", "VARCHAR"),
    ("quantity", "INTEGER"),
    ("unit_price", "DECIMAL(12,2)"),
    ("discount", "DECIMAL(12,2)"),
    ("returned_quantity", "INTEGER"),
    ("status", "VARCHAR"),
    ("promo_code", "VARCHAR"),
)


def orders(market: str) -> CsvDataset:
    """Daily order lines of one market, one file per day, in the market's local time."""
    return CsvDataset(
        name="ingest_orders",
        prefix=f"{market}/raw_data/DWH/Oracle/ingest_orders/",
        blob_pattern=r"(?P<year>\d{4})/ingest_orders_(?P<date>\d{8})\.csv",
        columns=ORDER_COLUMNS,
        lake_path="orders/market={market}/year={year}/{stem}.parquet",
        optional=frozenset({"discount", "returned_quantity", "promo_code"}),
    )


UK_PRODUCTS_SKU = CsvDataset(
    name="products_sku",
    prefix="UK/raw_data/reference/products_sku/",
    blob_pattern=r"products_sku\.csv",
    columns=(
        ("sku", "VARCHAR"),
        ("product_name", "VARCHAR"),
        ("category", "VARCHAR"),
        ("brand", "VARCHAR"),
        ("unit_cost_gbp", "DECIMAL(12,2)"),
        ("launch_date", "DATE"),
    ),
    lake_path="reference/uk_products_sku/{stem}.parquet",
    optional=frozenset({"brand", "launch_date"}),
)

UK_NEW_NAMES = CsvDataset(
    name="new_names",
    prefix="UK/raw_data/reference/new_names/",
    blob_pattern=r"new_names\.csv",
    columns=(
        ("customer_id", "VARCHAR"),
        ("first_name", "VARCHAR"),
        ("last_name", "VARCHAR"),
        ("email_opt_in", "BOOLEAN"),
        ("first_order_date", "DATE"),
    ),
    lake_path="reference/uk_new_names/{stem}.parquet",
    optional=frozenset({"email_opt_in"}),
)


SCV_CUSTOMERS = CsvDataset(
    name="scv_customers",
    prefix="UK/raw_data/SCV/",
    blob_pattern=r"(?P<year>\d{4})/scv_customers_(?P<date>\d{8})\.csv",
    columns=(
        ("customer_id", "VARCHAR"),
        ("market", "VARCHAR"),
        ("segment", "VARCHAR"),
        ("lifetime_orders", "INTEGER"),
        ("lifetime_value_gbp", "DECIMAL(14,2)"),
        ("first_order_date", "DATE"),
        ("last_order_date", "DATE"),
    ),
    lake_path="scv/year={year}/{stem}.parquet",
    optional=frozenset({"segment", "last_order_date"}),
)


def by_asset(markets: list[str]) -> dict[str, CsvDataset]:
    """The dataset each ingestion asset syncs (dataflows/ingestion.py), by asset name: how the
    column lineage finds the CSV behind a dbt source's `meta.daybreak_asset`."""
    return {
        **{f"{market.lower()}_orders_azure": orders(market) for market in markets},
        "uk_products_sku": UK_PRODUCTS_SKU,
        "uk_new_names": UK_NEW_NAMES,
        "scv_customers_azure": SCV_CUSTOMERS,
    }
