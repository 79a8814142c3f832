"""Finance's budget workbook, wide to long: one row per day and market, in local currency and GBP.

The workbook layout (what `make demo-data` writes, and what Finance keeps on SharePoint):
- one sheet per budget year, named `Budget YYYY` or carrying a `Budget year` label with the year in
  the cell to its right (both may be present; they must agree);
- in it a header row starting `Market`, `Currency`, then one column per day (a date), per month
  (`YYYY-MM`) or per ISO week (`YYYY-Www`); months and weeks are spread evenly over their days in
  the currency's smallest unit (cents; whole yen), summing exactly to the period's amount; a
  `Total` column (or any blank header) is ignored;
- one row per market below it, amounts in the market's currency;
- a sheet `Exchange rates` with a header `Year`, `Currency`, `Local per GBP`: budget rates as units
  of local currency per 1 GBP (EUR 1.17, JPY 190), so budget_gbp = budget_local / rate.

Merged cells in the header row and the label columns are read as their top-left value; formulas
are read as the value Excel cached when the workbook was saved. Every problem is reported with its
sheet and cell (`Budget 2026!F14`), all of them at once.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

# openpyxl is imported where a workbook is read: every command imports this module (the graph
# and the column lineage name its columns), and openpyxl alone took 0.14 s to import.
if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

RATES_SHEET = "Exchange rates"
RATES_HEADER = ("year", "currency", "local per gbp")
_SCAN_ROWS = 30
_CENT = Decimal("0.01")
# ISO 4217 currencies without a minor unit; budgets in them are spread to whole units.
_NO_MINOR_UNIT = frozenset({"JPY", "KRW", "ISK", "CLP", "VND", "HUF", "TWD"})
_MAX_PROBLEMS = 25

SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("market", pa.string(), nullable=False),
        pa.field("budget_year", pa.int32(), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("budget_local", pa.decimal128(18, 2), nullable=False),
        pa.field("fx_local_per_gbp", pa.decimal128(18, 6), nullable=False),
        pa.field("budget_gbp", pa.decimal128(18, 2), nullable=False),
    ]
)


# Column lineage (docs/ARCHITECTURE.md, "Column lineage"): the asset that reads the workbook
# (dataflows/budget.py), the workbook's columns as a reader of it sees them, and how each column
# of the long table above comes from them.
ASSET = "daily_sales_budget_exchange_ingest"
WORKBOOK_COLUMNS: dict[str, str] = {
    "market": "Budget sheets: the Market column",
    "currency": "Budget sheets: the Currency column",
    "period": "Budget sheets: each day (a date), month (YYYY-MM) or ISO week (YYYY-Www) header",
    "amount": "Budget sheets: the amount under each period, in the market's currency",
    "budget_year": "Budget sheets: the year in the sheet's name or its Budget year label",
    "rate_year": f"{RATES_SHEET}: the Year column",
    "rate_currency": f"{RATES_SHEET}: the Currency column",
    "local_per_gbp": f"{RATES_SHEET}: the Local per GBP column",
}
_SPREAD = "the period's amount spread evenly over its days in the currency's smallest unit"
# long column -> [(workbook column, how, expression)]; the rate is joined on year and currency.
LINEAGE: dict[str, list[tuple[str, str, str]]] = {
    "date": [("period", "computed", "each day of the period")],
    "market": [("market", "copied", "")],
    "budget_year": [("budget_year", "copied", "")],
    "currency": [("currency", "copied", "")],
    "budget_local": [("amount", "computed", _SPREAD)],
    "fx_local_per_gbp": [("local_per_gbp", "copied", "")],
    "budget_gbp": [
        ("amount", "computed", f"budget_local / local_per_gbp ({_SPREAD})"),
        ("local_per_gbp", "computed", "budget_local / local_per_gbp"),
    ],
}
LINEAGE_JOINED_ON = ("rate_year", "rate_currency")


@dataclass
class BudgetError(ValueError):
    """The workbook cannot be loaded as it is; each problem names its sheet and cell."""

    workbook: str
    problems: list[str]

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        shown = "; ".join(self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return f"{self.workbook}: {shown}{more}"


@dataclass
class BudgetTable:
    """The long budget and the budget years it covers."""

    table: pa.Table
    years: list[int] = field(default_factory=list)


def sheet_name(title: str) -> str:
    """A sheet name the way Excel writes it in a reference (quoted when it has spaces)."""
    return title if re.fullmatch(r"\w+", title) else f"'{title}'"


def ref(ws: Worksheet, row: int, col: int) -> str:
    """`Sheet!A1` the way Excel writes it."""
    from openpyxl.utils import get_column_letter

    return f"{sheet_name(ws.title)}!{get_column_letter(col)}{row}"


class _Sheet:
    """Cached values of one sheet, with merged ranges resolved and formulas to explain blanks."""

    def __init__(self, values: Worksheet, formulas: Worksheet) -> None:
        self.ws = values
        self._formulas = formulas
        self._merged: dict[tuple[int, int], tuple[int, int]] = {}
        for rng in values.merged_cells.ranges:
            for row in range(rng.min_row, rng.max_row + 1):
                for col in range(rng.min_col, rng.max_col + 1):
                    self._merged[(row, col)] = (rng.min_row, rng.min_col)

    def value(self, row: int, col: int, *, merged: bool = False) -> Any:
        if merged:
            row, col = self._merged.get((row, col), (row, col))
        return self.ws.cell(row, col).value

    def is_merged_child(self, row: int, col: int) -> bool:
        return self._merged.get((row, col), (row, col)) != (row, col)

    def formula(self, row: int, col: int) -> str | None:
        raw = self._formulas.cell(row, col).value
        return raw if isinstance(raw, str) and raw.startswith("=") else None

    def ref(self, row: int, col: int) -> str:
        return ref(self.ws, row, col)


def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _number(sheet: _Sheet, row: int, col: int, what: str, problems: list[str]) -> Decimal | None:
    value = sheet.value(row, col)
    where = sheet.ref(row, col)
    if value is None or (isinstance(value, str) and not value.strip()):
        formula = sheet.formula(row, col)
        if formula:
            problems.append(
                f"{where}: formula {formula} has no cached value "
                "(open and save the workbook in Excel so its values are stored)"
            )
        elif sheet.is_merged_child(row, col):
            problems.append(f"{where}: {what} is blank (part of a merged cell)")
        else:
            problems.append(f"{where}: {what} is blank (enter 0 for none)")
        return None
    if isinstance(value, bool):
        problems.append(f"{where}: {what} is not a number: {value!r}")
        return None
    try:
        number = Decimal(str(value).strip()) if isinstance(value, str) else Decimal(repr(value))
    except InvalidOperation:
        problems.append(f"{where}: {what} is not a number: {value!r}")
        return None
    if not number.is_finite():
        problems.append(f"{where}: {what} is not a number: {value!r}")
        return None
    if number < 0:
        problems.append(f"{where}: {what} is negative: {value!r}")
        return None
    return number


def _header_days(sheet: _Sheet, row: int, col: int, year: int) -> list[dt.date] | str | None:
    """The days a header cell stands for; None to ignore the column; a string is an error."""
    value = sheet.value(row, col, merged=True)
    if isinstance(value, dt.datetime | dt.date):
        day = value.date() if isinstance(value, dt.datetime) else value
        return [day] if day.year == year else f"{day} is outside budget year {year}"
    text = _text(value)
    if not text or text.casefold() == "total":
        return None
    if m := re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text):
        try:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return f"{text!r} is not a date that exists"
        return [day] if day.year == year else f"{day} is outside budget year {year}"
    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        y, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            return f"{text!r} is not a month"
        if y != year:
            return f"month {text} is outside budget year {year}"
        return [dt.date(y, month, d) for d in range(1, calendar.monthrange(y, month)[1] + 1)]
    if m := re.fullmatch(r"(\d{4})-W(\d{2})", text):
        try:
            monday = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
        except ValueError:
            return f"{text!r} is not an ISO week"
        if int(m[1]) != year:
            return f"week {text} is outside budget year {year}"
        return [monday + dt.timedelta(days=i) for i in range(7)]
    return f"header {text!r} is not a date, a month (YYYY-MM) or an ISO week (YYYY-Www)"


def _spread(amount: Decimal, days: int, currency: str) -> list[Decimal]:
    """`amount` over `days` days in the currency's smallest unit, summing exactly to it."""
    unit = Decimal(1) if currency in _NO_MINOR_UNIT else _CENT
    units = int((amount / unit).to_integral_value(ROUND_HALF_EVEN))
    base, extra = divmod(units, days)
    return [(Decimal(base + (1 if i < extra else 0)) * unit).quantize(_CENT) for i in range(days)]


def _find_header(sheet: _Sheet, labels: tuple[str, ...]) -> tuple[int, int] | None:
    """(row, col) of the first cell of a row that reads `labels` left to right."""
    ws = sheet.ws
    for row in range(1, min(ws.max_row, _SCAN_ROWS) + 1):
        for col in range(1, min(ws.max_column, 10) + 1):
            found = tuple(
                _text(sheet.value(row, col + i, merged=True)).casefold() for i in range(len(labels))
            )
            if found == labels:
                return row, col
    return None


def _sheet_year(sheet: _Sheet) -> tuple[int | None, str | None]:
    """The budget year of a sheet from its name or a `Budget year` label; (None, None) if none."""
    by_name = None
    if m := re.fullmatch(r"(?i)budget\s+(\d{4})", sheet.ws.title.strip()):
        by_name = int(m[1])
    ws = sheet.ws
    for row in range(1, min(ws.max_row, _SCAN_ROWS) + 1):
        for col in range(1, min(ws.max_column, 10)):
            if _text(sheet.value(row, col)).casefold() == "budget year":
                raw = sheet.value(row, col + 1)
                try:
                    labelled = int(_text(raw))
                except ValueError:
                    return None, f"{sheet.ref(row, col + 1)}: budget year {raw!r} is not a year"
                if by_name is not None and labelled != by_name:
                    return None, (
                        f"{sheet.ref(row, col + 1)}: budget year {labelled} contradicts the "
                        f"sheet name {sheet.ws.title!r}"
                    )
                return labelled, None
    return by_name, None


def _read_rates(sheet: _Sheet, problems: list[str]) -> dict[tuple[int, str], Decimal]:
    header = _find_header(sheet, RATES_HEADER)
    if header is None:
        problems.append(
            f"{sheet_name(sheet.ws.title)}: header row not found (expected 'Year', 'Currency', "
            f"'Local per GBP' side by side in the first {_SCAN_ROWS} rows)"
        )
        return {}
    top, left = header
    rates: dict[tuple[int, str], Decimal] = {}
    seen: dict[tuple[int, str], str] = {}
    for row in range(top + 1, sheet.ws.max_row + 1):
        year_raw, currency = sheet.value(row, left, merged=True), _text(sheet.value(row, left + 1))
        if year_raw is None and not currency:
            break
        try:
            year = int(_text(year_raw))
        except ValueError:
            problems.append(f"{sheet.ref(row, left)}: year {year_raw!r} is not a year")
            continue
        rate = _number(sheet, row, left + 2, f"exchange rate for {currency} {year}", problems)
        key = (year, currency.upper())
        if key in seen:
            problems.append(
                f"{sheet.ref(row, left + 1)}: rate for {currency} {year} appears twice "
                f"(also {seen[key]})"
            )
            continue
        seen[key] = sheet.ref(row, left + 1)
        if rate is not None:
            if rate == 0:
                problems.append(f"{sheet.ref(row, left + 2)}: exchange rate is zero")
            else:
                rates[key] = rate
    return rates


def _budget_rows(
    sheet: _Sheet, year: int, currencies: Mapping[str, str], problems: list[str]
) -> Iterator[tuple[dt.date, str, str, Decimal, str]]:
    """(day, market, currency, amount, cell) for every budget cell of one year's sheet."""
    header = _find_header(sheet, ("market", "currency"))
    if header is None:
        problems.append(
            f"{sheet_name(sheet.ws.title)}: header row not found (expected 'Market' and 'Currency' "
            f"side by side in the first {_SCAN_ROWS} rows)"
        )
        return
    top, left = header
    columns: list[tuple[int, list[dt.date]]] = []
    for col in range(left + 2, sheet.ws.max_column + 1):
        days = _header_days(sheet, top, col, year)
        if isinstance(days, str):
            problems.append(f"{sheet.ref(top, col)}: {days}")
        elif days is not None:
            columns.append((col, days))
    markets_seen: dict[str, str] = {}
    for row in range(top + 1, sheet.ws.max_row + 1):
        market = _text(sheet.value(row, left, merged=True)).upper()
        if not market:
            if all(sheet.value(row, c) is None for c, _ in columns):
                break
            problems.append(f"{sheet.ref(row, left)}: budget row without a market")
            continue
        if market not in currencies:
            problems.append(
                f"{sheet.ref(row, left)}: market {market!r} is not configured "
                f"(configured: {', '.join(currencies)})"
            )
            continue
        if market in markets_seen:
            problems.append(
                f"{sheet.ref(row, left)}: market {market} appears twice "
                f"(also {markets_seen[market]})"
            )
            continue
        markets_seen[market] = sheet.ref(row, left)
        currency = _text(sheet.value(row, left + 1, merged=True)).upper()
        if currency != currencies[market]:
            problems.append(
                f"{sheet.ref(row, left + 1)}: currency {currency or 'blank'!r} for {market}, "
                f"but the config says {currencies[market]}"
            )
            continue
        for col, days in columns:
            amount = _number(sheet, row, col, f"budget for {market}", problems)
            if amount is None:
                continue
            for day, share in zip(days, _spread(amount, len(days), currency), strict=True):
                yield day, market, currency, share, sheet.ref(row, col)


def read_budget(
    path: Path, currencies: Mapping[str, str], *, name: str | None = None
) -> BudgetTable:
    """Read the workbook at `path` into the long budget; BudgetError lists every problem."""
    label = name or path.name
    try:
        from openpyxl import load_workbook

        values = load_workbook(path, data_only=True)
        formulas = load_workbook(path, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a file that is not a workbook
        raise BudgetError(label, [f"not an Excel workbook (.xlsx): {exc}"]) from None
    problems: list[str] = []
    sheets = [_Sheet(values[title], formulas[title]) for title in values.sheetnames]
    by_title = {s.ws.title.strip().casefold(): s for s in sheets}

    rates_sheet = by_title.get(RATES_SHEET.casefold())
    rates: dict[tuple[int, str], Decimal] = {}
    if rates_sheet is None:
        problems.append(f"missing sheet {RATES_SHEET!r} (sheets: {', '.join(values.sheetnames)})")
    else:
        rates = _read_rates(rates_sheet, problems)

    budget_sheets = []
    for sheet in sheets:
        if sheet is rates_sheet:
            continue
        year, error = _sheet_year(sheet)
        if error:
            problems.append(error)
        elif year is not None:
            budget_sheets.append((sheet, year))
    if not budget_sheets:
        problems.append(
            "missing sheet 'Budget YYYY' (no sheet is named so or has a 'Budget year' label; "
            f"sheets: {', '.join(values.sheetnames)})"
        )

    rows: dict[tuple[dt.date, str], tuple[int, str, Decimal, Decimal, str]] = {}
    missing_rates: set[tuple[int, str]] = set()
    for sheet, year in budget_sheets:
        for day, market, currency, amount, cell in _budget_rows(sheet, year, currencies, problems):
            if (day, market) in rows:
                problems.append(
                    f"{cell}: {day} for {market} appears twice (also {rows[(day, market)][4]})"
                )
                continue
            rate = rates.get((year, currency))
            if rate is None:
                if (year, currency) not in missing_rates and rates_sheet is not None:
                    missing_rates.add((year, currency))
                    problems.append(
                        f"{sheet_name(RATES_SHEET)}: missing exchange rate for {currency} "
                        f"in {year} (needed by {sheet_name(sheet.ws.title)})"
                    )
                continue
            rows[(day, market)] = (year, currency, amount, rate, cell)
    if problems:
        raise BudgetError(
            label,
            problems[:_MAX_PROBLEMS]
            + (
                [f"... {len(problems) - _MAX_PROBLEMS} more"]
                if len(problems) > _MAX_PROBLEMS
                else []
            ),
        )

    ordered = sorted(rows.items())
    table = pa.table(
        {
            "date": [day for (day, _), _ in ordered],
            "market": [market for (_, market), _ in ordered],
            "budget_year": [v[0] for _, v in ordered],
            "currency": [v[1] for _, v in ordered],
            "budget_local": [v[2] for _, v in ordered],
            "fx_local_per_gbp": [v[3].quantize(Decimal("0.000001")) for _, v in ordered],
            "budget_gbp": [(v[2] / v[3]).quantize(_CENT, ROUND_HALF_EVEN) for _, v in ordered],
        },
        schema=SCHEMA,
    )
    return BudgetTable(table, sorted({year for _, year in budget_sheets}))
