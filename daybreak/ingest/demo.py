"""A realistic demo landing zone, laid out exactly like the Azure container.

For each configured market: one order CSV per day for the last `demo.days` days up to yesterday,
with `demo.rows_per_day` order lines each, plus the UK reference files and Finance's budget
workbook (under `sharepoint/`, as it sits in the SharePoint drive). Rows come from DuckDB
SQL seeded by hash(seed, market, day, row), so the same seed gives the same files (for one DuckDB
version) and large benchmark scales generate in bulk, not row by row in Python.

    python -m daybreak.ingest.demo [--config PATH] [--if-empty] [--days N] [--rows-per-day N]
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import logging
import re
import sys
import zipfile
from pathlib import Path

import duckdb

from daybreak import clock
from daybreak.config import Settings, load_settings
from daybreak.errors import ConfigError
from daybreak.files import atomic_path
from daybreak.ingest import datasets
from daybreak.ingest.lake import sql_string

log = logging.getLogger(__name__)

# Roughly each market's rate against GBP, so prices look local (yen have no pence).
_PRICE_FACTOR = {"GBP": (1.0, 2), "EUR": (1.17, 2), "JPY": (190.0, 0), "USD": (1.27, 2)}
_SKUS = 240


def _orders_sql(seed: int, market: str, currency: str, day: dt.date, rows: int) -> str:
    factor, digits = _PRICE_FACTOR.get(currency, (1.0, 2))
    key = f"{seed}, {sql_string(market)}, DATE {sql_string(day.isoformat())}"
    return f"""
    WITH lines AS (
        SELECT i, (i * 2) // 5 AS order_no FROM range({rows}) t(i)
    ), rnd AS (
        SELECT i, order_no,
               hash({key}, i) AS h,
               hash({key}, 'order', order_no) AS ho,
               row_number() OVER (PARTITION BY order_no ORDER BY i) AS order_line
        FROM lines
    ), priced AS (
        SELECT *, (h % {_SKUS}) AS sku_no FROM rnd
    )
    SELECT
        {sql_string(market)} || '-' || strftime(DATE {sql_string(day.isoformat())}, '%Y%m%d')
            || '-' || lpad(order_no::VARCHAR, 6, '0') AS order_id,
        order_line,
        strftime(DATE {sql_string(day.isoformat())} + INTERVAL 7 HOUR
                 + to_seconds((ho % 54000)::BIGINT), '%Y-%m-%d %H:%M:%S') AS order_ts,
        'C' || {sql_string(market)} || lpad(((ho // 7) % {max(rows * 40, 1000)})::VARCHAR, 7, '0')
            AS customer_id,
        'SKU-' || lpad(sku_no::VARCHAR, 5, '0') || CASE WHEN h % 53 = 0 THEN '  ' ELSE '' END
            AS sku,
        1 + (h // 11) % 4 AS quantity,
        round((4.99 + (sku_no % 60) * 1.25) * {factor}, {digits})::DECIMAL(12,2) AS unit_price,
        CASE WHEN h % 9 = 0 THEN round((4.99 + (sku_no % 60) * 1.25) * {factor} * 0.1, {digits})
             ::DECIMAL(12,2) END AS discount,
        CASE WHEN h % 29 = 0 THEN 1 + (h // 11) % 4 END AS returned_quantity,
        CASE WHEN ho % 41 = 0 THEN 'cancelled' ELSE 'completed' END AS status,
        CASE WHEN ho % 13 = 0 THEN 'WINTER10' WHEN ho % 17 = 0 THEN 'WELCOME ' END AS promo_code
    FROM priced ORDER BY i
    """


def _products_sql(seed: int) -> str:
    return f"""
    SELECT 'SKU-' || lpad(i::VARCHAR, 5, '0') AS sku,
           (['Linen', 'Merino', 'Cotton', 'Silk', 'Denim'])[1 + i % 5] || ' '
             || (['Shirt', 'Scarf', 'Jacket', 'Dress', 'Jumper', 'Trousers'])[1 + (i // 5) % 6]
             || ' ' || (i // 30 + 1)::VARCHAR AS product_name,
           (['Tops', 'Accessories', 'Outerwear', 'Dresses', 'Knitwear', 'Bottoms'])
             [1 + (i // 5) % 6] AS category,
           CASE WHEN i % 7 = 0 THEN NULL ELSE (['Daybreak', 'Northfield', 'Kiso'])[1 + i % 3] END
             AS brand,
           round((4.99 + (i % 60) * 1.25) * 0.45, 2)::DECIMAL(12,2) AS unit_cost_gbp,
           DATE '2020-01-01' + ((hash({seed}, 'launch', i) % 1800)::INTEGER) AS launch_date
    FROM range({_SKUS}) t(i)
    """


def _new_names_sql(seed: int, rows: int, first_day: dt.date, days: int) -> str:
    return f"""
    SELECT 'CUK' || lpad(((hash({seed}, 'new', i) // 7) % {max(rows * 40, 1000)})::VARCHAR, 7, '0')
             AS customer_id,
           (['Amelia', 'Oliver', 'Zoë', 'Jürgen', 'Siobhán', 'Haruto', 'Chiara', 'Noah'])
             [1 + (hash({seed}, 'fn', i) % 8)::BIGINT] || CASE WHEN i % 31 = 0 THEN ' ' ELSE '' END
             AS first_name,
           (['Smith', 'Jones', 'O''Brien', 'Müller', 'Rossi', 'Tanaka', 'Taylor', 'Brown'])
             [1 + (hash({seed}, 'ln', i) % 8)::BIGINT] AS last_name,
           CASE WHEN i % 5 = 0 THEN NULL ELSE hash({seed}, 'opt', i) % 2 = 0 END AS email_opt_in,
           DATE {sql_string(first_day.isoformat())} + ((hash({seed}, 'd', i) % {days})::INTEGER)
             AS first_order_date
    FROM range({rows}) t(i)
    QUALIFY row_number() OVER (PARTITION BY customer_id ORDER BY i) = 1  -- one row per customer
    ORDER BY i
    """


def store_cached_values(path: Path, sheet_index: int, values: dict[str, object]) -> None:
    """Give formula cells the cached values Excel would have saved (openpyxl cannot compute).

    openpyxl writes a formula cell as `<c r="F5"><f>...</f><v /></c>`; this fills in `<v>`.
    """
    member = f"xl/worksheets/sheet{sheet_index + 1}.xml"
    with zipfile.ZipFile(path) as src:
        contents = {info: src.read(info.filename) for info in src.infolist()}
    for info, data in contents.items():
        if info.filename == member:
            xml = data.decode("utf-8")
            for cell, value in values.items():
                pattern = re.compile(rf'(<c r="{cell}"[^>]*><f>[^<]*</f>)<v\s*/>')
                xml, count = pattern.subn(rf"\g<1><v>{value}</v>", xml)
                if count != 1:
                    raise ValueError(f"{member}: no formula cell {cell} to give a value")
            contents[info] = xml.encode("utf-8")
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in contents.items():
            out.writestr(info, data)


def _daily_budget(rows: int, market: str, currency: str, day: dt.date) -> float:
    factor, digits = _PRICE_FACTOR.get(currency, (1.0, 2))
    weekday = (0.92, 0.95, 0.97, 1.0, 1.08, 1.15, 1.05)[day.weekday()]
    ambition = 1 + (sum(map(ord, market)) % 9 - 4) / 100  # each market's target differs a little
    # About what the demo orders bring in: ~42 per unit, ~2.5 units a line, less returns.
    return round(rows * 98.0 * factor * weekday * ambition, digits)


def write_budget_workbook(settings: Settings, dest: Path, first: dt.date, last: dt.date) -> None:
    """Finance's budget workbook in its wide SharePoint layout (see daybreak.budget)."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    rows = settings.demo.rows_per_day
    markets = list(settings.markets.items())
    years = list(range(first.year, last.year + 1))
    wb = Workbook()
    wb.remove(wb.active)
    totals: list[dict[str, object]] = []
    for year in years:
        ws = wb.create_sheet(f"Budget {year}")
        ws["A1"] = "QI daily sales budget"
        ws.merge_cells("A1:F1")
        ws["A2"], ws["B2"] = "Budget year", year
        ws["A3"] = "Amounts in each market's currency; rates on the 'Exchange rates' sheet"
        top = 5
        ws.cell(top, 1, "Market")
        ws.cell(top, 2, "Currency")
        # The latest year is budgeted by day; earlier years by month, spread to days on load.
        if year == years[-1]:
            start = dt.date(year, 1, 1)
            periods = [
                [start + dt.timedelta(days=i)] for i in range(366 if calendar.isleap(year) else 365)
            ]
            headers: list[object] = [dt.datetime.combine(p[0], dt.time()) for p in periods]
        else:
            periods = [
                [dt.date(year, m, d) for d in range(1, calendar.monthrange(year, m)[1] + 1)]
                for m in range(1, 13)
            ]
            headers = [f"{year}-{m:02d}" for m in range(1, 13)]
        for i, header in enumerate(headers):
            ws.cell(top, 3 + i, header)
        total_col = 3 + len(headers)
        ws.cell(top, total_col, "Total")
        cached: dict[str, object] = {}
        for r, (code, market) in enumerate(markets, start=top + 1):
            ws.cell(r, 1, code)
            ws.cell(r, 2, market.currency)
            total = 0.0
            for i, days in enumerate(periods):
                amount = sum(_daily_budget(rows, code, market.currency, d) for d in days)
                amount = round(amount, _PRICE_FACTOR.get(market.currency, (1.0, 2))[1])
                ws.cell(r, 3 + i, amount)
                total += amount
            last_col = get_column_letter(total_col - 1)
            ws.cell(r, total_col, f"=SUM(C{r}:{last_col}{r})")
            cached[f"{get_column_letter(total_col)}{r}"] = round(total, 2)
        # Finance merges the currency cell of neighbouring markets that share one.
        for r in range(top + 1, top + len(markets)):
            if markets[r - top - 1][1].currency == markets[r - top][1].currency:
                ws.merge_cells(start_row=r, start_column=2, end_row=r + 1, end_column=2)
        totals.append(cached)
    rates = wb.create_sheet("Exchange rates")
    rates.append(["Year", "Currency", "Local per GBP"])
    for year in years:
        for currency in sorted({m.currency for _, m in markets}):
            rates.append([year, currency, _PRICE_FACTOR.get(currency, (1.0, 2))[0]])
    with atomic_path(dest) as tmp:
        wb.save(tmp)
        for index, cached in enumerate(totals):
            store_cached_values(tmp, index, cached)


def _scv_sql(seed: int, rows: int, snapshot: dt.date) -> str:
    day = sql_string(snapshot.isoformat())
    return f"""
    SELECT 'CUK' || lpad(i::VARCHAR, 7, '0') AS customer_id,
           'UK' AS market,
           CASE WHEN hash({seed}, 'seg', i) % 5 = 0 THEN NULL
                ELSE (['loyal', 'new', 'lapsing', 'occasional'])
                     [1 + (hash({seed}, 's', i) % 4)::BIGINT]
           END AS segment,
           1 + (hash({seed}, 'n', i) % 40)::INTEGER AS lifetime_orders,
           round((hash({seed}, 'v', i) % 500000) / 100.0, 2)::DECIMAL(14,2) AS lifetime_value_gbp,
           DATE {day} - (365 + hash({seed}, 'f', i) % 2000)::INTEGER AS first_order_date,
           DATE {day} - (hash({seed}, 'l', i, {day}) % 365)::INTEGER AS last_order_date
    FROM range({rows}) t(i)
    """


def _write(con: duckdb.DuckDBPyConnection, sql: str, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        con.execute(f"COPY ({sql}) TO {sql_string(str(tmp))} (HEADER, DELIMITER ',')")


def generate(
    settings: Settings,
    *,
    days: int | None = None,
    rows_per_day: int | None = None,
    end: dt.date | None = None,
    root: Path | None = None,
) -> int:
    """Write the demo landing zone under `root` (default: paths.landing); return files written."""
    root = root or settings.paths.landing
    days = days or settings.demo.days
    rows = rows_per_day or settings.demo.rows_per_day
    seed = settings.demo.seed
    last = end or (clock.today() - dt.timedelta(days=1))
    first = last - dt.timedelta(days=days - 1)
    con = duckdb.connect(config={"threads": 2, "memory_limit": "2GB"})
    written = 0
    try:
        for market, cfg in settings.markets.items():
            spec = datasets.orders(market)
            for offset in range(days):
                day = first + dt.timedelta(days=offset)
                name = f"{spec.prefix}{day:%Y}/ingest_orders_{day:%Y%m%d}.csv"
                _write(con, _orders_sql(seed, market, cfg.currency, day, rows), root / name)
                written += 1
        _write(
            con, _products_sql(seed), root / datasets.UK_PRODUCTS_SKU.prefix / "products_sku.csv"
        )
        _write(
            con,
            _new_names_sql(seed, max(rows * 2, 50), first, days),
            root / datasets.UK_NEW_NAMES.prefix / "new_names.csv",
        )
        written += 2
        # Single Customer View: one snapshot on the 1st of each month in the range.
        month = dt.date(first.year, first.month, 1)
        while month <= last:
            if month >= first:
                name = f"{datasets.SCV_CUSTOMERS.prefix}{month:%Y}/scv_customers_{month:%Y%m%d}.csv"
                _write(con, _scv_sql(seed, max(rows * 4, 100), month), root / name)
                written += 1
            month = (month + dt.timedelta(days=32)).replace(day=1)
    finally:
        con.close()
    write_budget_workbook(settings, root / "sharepoint" / settings.budget.file, first, last)
    return written + 1


def is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))


def ensure_demo_data(settings: Settings) -> bool:
    """Write the demo landing zone if the local landing folder is empty; True if it did."""
    landing = settings.paths.landing
    if (
        settings.source.backend != "local"
        or not settings.demo.generate_when_empty
        or not is_empty(landing)
    ):
        return False
    log.info("the landing zone %s is empty: writing demo data ([demo] in the config)", landing)
    count = generate(settings)
    log.info("wrote %d demo files", count)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m daybreak.ingest.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--config", help="config file (default: $DAYBREAK_CONFIG or ./daybreak.toml)"
    )
    parser.add_argument(
        "--if-empty", action="store_true", help="do nothing unless the landing folder is empty"
    )
    parser.add_argument("--days", type=int, help="days of orders per market (default: demo.days)")
    parser.add_argument("--rows-per-day", type=int, help="order lines per market and day")
    parser.add_argument("--end", type=dt.date.fromisoformat, help="last day (default: yesterday)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    landing = settings.paths.landing
    if settings.source.backend != "local":
        print(f"demo data: source backend is {settings.source.backend!r}; nothing to generate")
        return 0
    if args.if_empty and not is_empty(landing):
        print(f"demo data: {landing} already has files; leaving it as it is")
        return 0
    count = generate(settings, days=args.days, rows_per_day=args.rows_per_day, end=args.end)
    print(f"demo data: wrote {count} files under {landing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
