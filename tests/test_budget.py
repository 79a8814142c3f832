"""Budget workbook wide -> long, on small workbooks built here with openpyxl, good and bad."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from openpyxl import Workbook

from daybreak.assets import catalogue
from daybreak.config import Settings
from daybreak.ingest import demo
from daybreak.ingest.demo import store_cached_values
from daybreak.ingest.workbook import BudgetError, read_budget
from daybreak.runner.materialize import materialize, run_inputs

CURRENCIES = {"UK": "GBP", "DE": "EUR", "IT": "EUR", "JP": "JPY"}
D = dt.date

Sheets = dict[str, list[list[Any]]]


def good_sheets() -> Sheets:
    """Budget 2026: header on row 3; UK on row 4, DE on row 5, JP on row 6."""
    return {
        "Budget 2026": [
            ["Budget year", 2026],
            [],
            ["Market", "Currency", dt.datetime(2026, 1, 1), D(2026, 1, 2), "2026-02", "Total"],
            ["UK", "GBP", 100, 110.5, 2800, None],
            ["DE", "EUR", 200, 0, 28, None],
            ["JP", "JPY", 19000, 19000, 30000, None],
        ],
        "Exchange rates": [
            ["Year", "Currency", "Local per GBP"],
            [2026, "GBP", 1],
            [2026, "EUR", 1.25],
            [2026, "JPY", 190],
        ],
    }


def build(
    tmp_path: Path,
    sheets: Sheets,
    merges: dict[str, list[str]] | None = None,
    cached: dict[int, dict[str, object]] | None = None,
) -> Path:
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    ws.cell(r, c, value)
        for rng in (merges or {}).get(title, []):
            ws.merge_cells(rng)
    path = tmp_path / "budget.xlsx"
    wb.save(path)
    for index, values in (cached or {}).items():
        store_cached_values(path, index, values)
    return path


def rows_of(path: Path) -> dict[tuple[dt.date, str], dict[str, Any]]:
    table = read_budget(path, CURRENCIES).table.to_pylist()
    return {(r["date"], r["market"]): r for r in table}


def test_wide_to_long_with_days_months_and_rates(tmp_path: Path) -> None:
    result = read_budget(build(tmp_path, good_sheets()), CURRENCIES)
    assert result.years == [2026]
    assert result.table.num_rows == 3 * (2 + 28)  # two days plus February, per market
    rows = rows_of(build(tmp_path, good_sheets()))
    uk = rows[(D(2026, 1, 2), "UK")]
    assert (uk["currency"], uk["budget_local"], uk["budget_gbp"]) == (
        "GBP",
        Decimal("110.50"),
        Decimal("110.50"),
    )
    de = rows[(D(2026, 1, 1), "DE")]
    assert (de["fx_local_per_gbp"], de["budget_gbp"]) == (Decimal("1.250000"), Decimal("160.00"))
    assert rows[(D(2026, 2, 14), "UK")]["budget_local"] == Decimal("100.00")
    assert rows[(D(2026, 1, 2), "DE")]["budget_local"] == Decimal("0.00")  # 0 is a budget


def test_month_spread_sums_exactly_in_the_currency_unit(tmp_path: Path) -> None:
    sheets = good_sheets()
    sheets["Budget 2026"][3][4] = 1000  # UK Feb: 1000 / 28 does not divide into cents
    sheets["Budget 2026"][5][4] = 1000  # JP Feb: whole yen only
    rows = rows_of(build(tmp_path, sheets))
    feb = [D(2026, 2, d) for d in range(1, 29)]
    assert sum(rows[(d, "UK")]["budget_local"] for d in feb) == Decimal("1000.00")
    jp = [rows[(d, "JP")]["budget_local"] for d in feb]
    assert sum(jp) == 1000 and all(v == v.to_integral_value() for v in jp)


def test_iso_weeks_are_spread_over_seven_days(tmp_path: Path) -> None:
    sheets = good_sheets()
    sheets["Budget 2026"][2][4] = "2026-W10"
    sheets["Budget 2026"][3][4] = 700
    rows = rows_of(build(tmp_path, sheets))
    monday = dt.date.fromisocalendar(2026, 10, 1)
    assert [rows[(monday + dt.timedelta(i), "UK")]["budget_local"] for i in range(7)] == [
        Decimal("100.00")
    ] * 7


def test_merged_cells_and_cached_formula_values_read_correctly(tmp_path: Path) -> None:
    sheets = good_sheets()
    sheets["Budget 2026"] = [
        ["QI daily sales budget"],  # title merged A1:F1
        ["Budget year", 2026],
        [],
        ["Market", "Currency", dt.datetime(2026, 1, 1), D(2026, 1, 2), "2026-02", "Total"],
        ["UK", "GBP", 100, 110.5, 2800, "=SUM(C5:E5)"],
        ["DE", "EUR", 200, 0, 28, None],  # EUR merged B6:B7 for DE and IT
        ["IT", None, 50, 50, 50, None],
        ["JP", "JPY", 19000, "=C8*2", 30000, None],
    ]
    path = build(
        tmp_path,
        sheets,
        merges={"Budget 2026": ["A1:F1", "B6:B7"]},
        cached={0: {"F5": 3010.5, "D8": 38000}},
    )
    rows = rows_of(path)
    assert rows[(D(2026, 1, 1), "IT")]["currency"] == "EUR"
    assert rows[(D(2026, 1, 1), "IT")]["budget_gbp"] == Decimal("40.00")
    assert rows[(D(2026, 1, 2), "JP")]["budget_local"] == Decimal("38000.00")
    assert len({m for _, m in rows}) == 4


def test_several_years_in_one_workbook_and_year_from_the_sheet_name(tmp_path: Path) -> None:
    sheets = good_sheets()
    sheets["Budget 2025"] = [
        ["Market", "Currency", "2025-12"],
        ["UK", "GBP", 3100],
    ]
    sheets["Exchange rates"].append([2025, "GBP", 1])
    sheets["Notes"] = [["Anything finance wants to write"]]
    result = read_budget(build(tmp_path, sheets), CURRENCIES)
    assert result.years == [2025, 2026]
    dec = [r for r in result.table.to_pylist() if r["budget_year"] == 2025]
    assert len(dec) == 31 and {r["budget_local"] for r in dec} == {Decimal("100.00")}


Mutation = Callable[[Sheets], None]


def _set(sheet: str, row: int, col: int, value: Any) -> Mutation:
    def mutate(sheets: Sheets) -> None:
        rows = sheets[sheet]
        while len(rows) < row:
            rows.append([])
        while len(rows[row - 1]) < col:
            rows[row - 1].append(None)
        rows[row - 1][col - 1] = value

    return mutate


def _rename(old: str, new: str) -> Mutation:
    def mutate(sheets: Sheets) -> None:
        sheets[new] = sheets.pop(old)

    return mutate


def _drop_rate(currency: str) -> Mutation:
    def mutate(sheets: Sheets) -> None:
        sheets["Exchange rates"] = [r for r in sheets["Exchange rates"] if r[1] != currency]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        pytest.param(
            _rename("Exchange rates", "FX"), "missing sheet 'Exchange rates'", id="no-rates-sheet"
        ),
        pytest.param(
            lambda s: (s.pop("Budget 2026"), s.__setitem__("Sheet1", [["x"]])),
            "missing sheet 'Budget YYYY'",
            id="no-budget-sheet",
        ),
        pytest.param(
            _set("Budget 2026", 3, 1, "Country"),
            "'Budget 2026': header row not found",
            id="no-header",
        ),
        pytest.param(
            _set("Budget 2026", 5, 1, "FR"),
            "'Budget 2026'!A5: market 'FR' is not configured",
            id="unknown-market",
        ),
        pytest.param(
            _set("Budget 2026", 4, 4, "lots"),
            "'Budget 2026'!D4: budget for UK is not a number: 'lots'",
            id="non-numeric",
        ),
        pytest.param(
            _set("Budget 2026", 5, 3, -5),
            "'Budget 2026'!C5: budget for DE is negative: -5",
            id="negative",
        ),
        pytest.param(
            _set("Budget 2026", 4, 4, None), "'Budget 2026'!D4: budget for UK is blank", id="blank"
        ),
        pytest.param(
            _set("Budget 2026", 3, 4, "2026-02-30"),
            "'Budget 2026'!D3: '2026-02-30' is not a date that exists",
            id="no-such-date",
        ),
        pytest.param(
            _set("Budget 2026", 3, 4, D(2026, 1, 1)),
            "'Budget 2026'!D4: 2026-01-01 for UK appears twice (also 'Budget 2026'!C4)",
            id="duplicate-day",
        ),
        pytest.param(
            _set("Budget 2026", 3, 4, "2026-02-14"),
            "2026-02-14 for UK appears twice",
            id="day-inside-a-month",
        ),
        pytest.param(
            _set("Budget 2026", 3, 4, D(2025, 1, 2)),
            "'Budget 2026'!D3: 2025-01-02 is outside budget year 2026",
            id="wrong-year",
        ),
        pytest.param(
            _set("Budget 2026", 6, 1, "UK"),
            "'Budget 2026'!A6: market UK appears twice (also 'Budget 2026'!A4)",
            id="duplicate-market",
        ),
        pytest.param(
            _drop_rate("JPY"),
            "'Exchange rates': missing exchange rate for JPY in 2026",
            id="missing-rate",
        ),
        pytest.param(
            _set("Exchange rates", 3, 3, "n/a"),
            "'Exchange rates'!C3: exchange rate for EUR 2026 is not a number",
            id="bad-rate",
        ),
        pytest.param(
            _set("Budget 2026", 4, 2, "EUR"),
            "'Budget 2026'!B4: currency 'EUR' for UK, but the config says GBP",
            id="wrong-currency",
        ),
        pytest.param(
            _set("Budget 2026", 1, 2, 2027),
            "'Budget 2026'!B1: budget year 2027 contradicts the sheet name",
            id="year-mismatch",
        ),
        pytest.param(
            _set("Budget 2026", 3, 5, "Q1"),
            "'Budget 2026'!E3: header 'Q1' is not a date",
            id="bad-header",
        ),
    ],
)
def test_bad_workbook_names_sheet_and_cell(tmp_path: Path, mutate: Mutation, expected: str) -> None:
    sheets = copy.deepcopy(good_sheets())
    mutate(sheets)
    with pytest.raises(BudgetError) as caught:
        read_budget(build(tmp_path, sheets), CURRENCIES, name="Budget/Daily Sales Budget.xlsx")
    message = str(caught.value)
    assert message.startswith("Budget/Daily Sales Budget.xlsx: "), message
    assert expected in message, message


def test_formula_without_a_cached_value_is_an_error_not_a_zero(tmp_path: Path) -> None:
    sheets = good_sheets()
    sheets["Budget 2026"][3][2] = "=100*2"
    with pytest.raises(BudgetError, match=r"'Budget 2026'!C4: formula =100\*2 has no cached value"):
        read_budget(build(tmp_path, sheets), CURRENCIES)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    sheets = good_sheets()
    sheets["Budget 2026"][3][2] = "x"
    sheets["Budget 2026"][4][2] = -1
    with pytest.raises(BudgetError) as caught:
        read_budget(build(tmp_path, sheets), CURRENCIES)
    assert len(caught.value.problems) == 2


def test_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "budget.xlsx"
    path.write_text("order_id,sku\n")
    with pytest.raises(BudgetError, match="not an Excel workbook"):
        read_budget(path, CURRENCIES)


def _run_budget(settings: Settings) -> Any:
    dr = catalogue.build_driver(settings)
    assets = catalogue.catalogue(dr)
    inputs = {"settings": settings, **run_inputs()}
    (result,) = materialize(dr, assets, ["daily_sales_budget_exchange_ingest"], inputs)
    return result


def test_asset_writes_csv_and_parquet_and_keeps_them_when_the_workbook_goes_bad(
    settings: Settings,
) -> None:
    demo.generate(settings, days=40, end=dt.date(2026, 3, 31))
    # What a writer killed between its two files leaves behind is swept by the next run.
    killed = settings.paths.lake / "budget" / ".daily_sales_budget_exchange.parquet.0badf00d.tmp"
    killed.parent.mkdir(parents=True)
    killed.write_bytes(b"PAR1 half")
    good = _run_budget(settings)
    assert not killed.exists()
    assert good.status == "success", good.error
    assert good.value.years == [2026] and good.value.rows == 4 * 365
    parquet = settings.paths.lake / "budget" / "daily_sales_budget_exchange.parquet"
    csv = parquet.with_suffix(".csv")
    assert pq.read_table(parquet).num_rows == 4 * 365
    assert csv.read_text().count("\n") == 4 * 365 + 1
    before = (parquet.read_bytes(), csv.read_bytes())

    workbook = settings.paths.landing / "sharepoint" / settings.budget.file
    sheets = {"Budget 2026": [["Market", "Currency", "2026-01"], ["UK", "GBP", "n/a"]]}
    build(workbook.parent, sheets).replace(workbook)
    bad = _run_budget(settings)
    assert bad.status == "failed"
    assert "'Budget 2026'!C2: budget for UK is not a number" in bad.error
    assert (parquet.read_bytes(), csv.read_bytes()) == before  # previous good output stays

    kept = sorted(settings.state.downloads("budget").glob("*__*.xlsx"))
    assert len(kept) == 2  # the good version and the bad one, to compare
    again = _run_budget(settings)
    assert again.status == "failed"
    assert len(sorted(settings.state.downloads("budget").glob("*__*.xlsx"))) == 2


def test_kept_downloads_are_rotated(tmp_path: Path) -> None:
    from daybreak.files import keep_version

    folder = tmp_path / "kept"
    folder.mkdir()
    for i in range(5):
        fetched = folder / ".b.xlsx.fetching"
        fetched.write_bytes(f"version {i}".encode())
        keep_version(fetched, folder, "b.xlsx", keep=3)
    kept = sorted(folder.glob("b__*.xlsx"))
    assert [p.read_bytes() for p in kept] == [b"version 2", b"version 3", b"version 4"]
