"""CSV -> Parquet conversion on tiny inline files: good input, and every kind of bad input."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from daybreak.files import clean_stale_tmp
from daybreak.ingest import datasets, lake

HEADER = ",".join(datasets.orders("UK").column_names)
GOOD = [
    "UK-1,1,2026-03-01 09:15:00,C1,SKU-00001  ,2,10.50,,,completed,",
    "UK-1,2,2026-03-01 09:15:00,C1,SKU-00002,1,5.00,0.50,1,completed,WINTER10",
]
NAME = "UK/raw_data/DWH/Oracle/ingest_orders/2026/ingest_orders_20260301.csv"


def convert(tmp_path: Path, content: bytes | str, dest: Path | None = None) -> tuple[int, Path]:
    src = tmp_path / "in.csv"
    src.write_bytes(content.encode() if isinstance(content, str) else content)
    dest = dest or tmp_path / "lake" / "out.parquet"
    con = lake.connect()
    try:
        return lake.convert_csv(con, src, datasets.orders("UK"), dest, name=NAME), dest
    finally:
        con.close()


def csv_text(*lines: str, header: str = HEADER) -> str:
    return "\n".join([header, *lines]) + "\n"


def test_good_file_is_typed_trimmed_and_complete(tmp_path: Path) -> None:
    rows, dest = convert(tmp_path, csv_text(*GOOD))
    assert rows == 2
    got = duckdb.sql(
        f"SELECT sku, quantity, unit_price, discount, promo_code, order_ts::VARCHAR "
        f"FROM '{dest}' ORDER BY order_line"
    ).fetchall()
    assert got[0][0] == "SKU-00001"  # trailing spaces trimmed
    assert got[0][3] is None and got[0][4] is None  # blank optional fields are NULL
    assert str(got[1][2]) == "5.00" and got[1][4] == "WINTER10"
    assert got[0][5] == "2026-03-01 09:15:00"
    types = dict(
        duckdb.sql(f"DESCRIBE SELECT * FROM '{dest}'").fetchall()[i][:2] for i in range(11)
    )
    assert types["unit_price"] == "DECIMAL(12,2)" and types["order_ts"] == "TIMESTAMP"


def test_columns_may_come_in_any_order(tmp_path: Path) -> None:
    cols = datasets.orders("UK").column_names
    header = ",".join(reversed(cols))
    line = ",".join(reversed(GOOD[1].split(",")))
    rows, dest = convert(tmp_path, csv_text(line, header=header))
    assert rows == 1
    assert duckdb.sql(f"SELECT order_id, quantity FROM '{dest}'").fetchall() == [("UK-1", 1)]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"", "empty file (0 bytes)", id="zero-bytes"),
        pytest.param(
            csv_text(), "line 2: no data rows: the file has only a header", id="header-only"
        ),
        pytest.param(
            csv_text(*GOOD, header=HEADER.replace("unit_price", "price")),
            "line 1, column 'unit_price': missing column",
            id="renamed-column",
        ),
        pytest.param(
            csv_text(
                "UK-1,1,2026-03-01 09:15:00,C1,SKU-1,2,10.50,,,completed",
                header=HEADER.rsplit(",", 1)[0],
            ),
            "line 1, column 'promo_code': missing column",
            id="missing-column",
        ),
        pytest.param(
            csv_text(*GOOD).replace(",", ";"),
            "line 1: wrong delimiter: the header is separated by ';', expected ','",
            id="wrong-delimiter",
        ),
        pytest.param(
            csv_text(GOOD[0], GOOD[1].replace("2026-03-01 09:15:00", "01/03/2026 9am")),
            "line 3, column 'order_ts': Error when converting column \"order_ts\"",
            id="bad-timestamp",
        ),
        pytest.param(
            csv_text(GOOD[0], GOOD[0], GOOD[1].replace(",5.00,", ",5,00,")),
            "line 4: expected columns: 11 Found: 12",
            id="decimal-comma",
        ),
        pytest.param(
            csv_text(GOOD[0].replace(",2,10.50,", ",two,10.50,")),
            "line 2, column 'quantity': Error when converting column \"quantity\"",
            id="bad-number",
        ),
        pytest.param(
            csv_text(GOOD[0], GOOD[1]).encode().replace(b"WINTER10", b"WINTER\xff10"),
            "line 3, column 'promo_code': not valid UTF-8",
            id="invalid-utf8",
        ),
        pytest.param(
            HEADER.encode().replace(b"sku", b"sk\xfe") + b"\n" + GOOD[0].encode(),
            "line 1: not valid UTF-8",
            id="invalid-utf8-header",
        ),
        pytest.param(
            csv_text(GOOD[0], GOOD[1].replace(",C1,", ",  ,")),
            "line 3, column 'customer_id': required value is blank",
            id="blank-required",
        ),
    ],
)
def test_bad_file_names_blob_line_and_column_and_keeps_previous_output(
    tmp_path: Path, content: bytes | str, expected: str
) -> None:
    _, dest = convert(tmp_path, csv_text(*GOOD))
    before = dest.read_bytes()
    with pytest.raises(lake.BadFile) as caught:
        convert(tmp_path, content, dest)
    message = str(caught.value)
    assert message.startswith(NAME + ": "), message
    assert expected in message, message
    assert dest.read_bytes() == before  # previous output untouched
    assert list(dest.parent.iterdir()) == [dest]  # no temporary file left behind


def test_every_bad_line_is_counted_not_just_the_first(tmp_path: Path) -> None:
    bad = GOOD[0].replace(",2,10.50,", ",x,10.50,")
    with pytest.raises(lake.BadFile) as caught:
        convert(tmp_path, csv_text(*([bad] * 30)))
    assert caught.value.total == 30
    assert "(and 27 more)" in str(caught.value)


def test_clean_stale_tmp_removes_only_temporary_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    keep = tmp_path / "a" / "x.parquet"
    keep.write_bytes(b"PAR1")
    (tmp_path / "a" / ".x.parquet.1234abcd.tmp").write_bytes(b"partial")
    assert clean_stale_tmp(tmp_path) == 1
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.parquet"]


def batch_items(tmp_path: Path, contents: list[str]) -> list[lake.BatchItem]:
    items = []
    for n, content in enumerate(contents):
        src = tmp_path / f"in{n}.csv"
        src.write_text(content)
        extra = {
            "source_blob": lake.sql_string(f"blob{n}"),
            "file_date": f"DATE '2026-03-0{n + 1}'",
        }
        items.append(lake.BatchItem(src, tmp_path / "lake" / f"out{n}.parquet", extra))
    return items


def test_a_batch_writes_what_file_by_file_conversion_writes(tmp_path: Path) -> None:
    other = [line.replace("UK-1,", "UK-2,") for line in GOOD]
    items = batch_items(tmp_path, [csv_text(*GOOD), csv_text(*other, GOOD[0])])
    con = lake.connect()
    try:
        counts = lake.convert_batch(con, items, datasets.orders("UK"), tmp_path / "lake")
        for n, item in enumerate(items):  # the same file converted alone, for comparison
            alone = tmp_path / f"one{n}.parquet"
            lake.convert_csv(
                con, item.csv_path, datasets.orders("UK"), alone, name=NAME, extra=item.extra
            )
    finally:
        con.close()
    assert counts == [2, 3]
    for n, item in enumerate(items):
        batch = duckdb.sql(f"SELECT * FROM '{item.dest}' ORDER BY ALL").fetchall()
        alone = duckdb.sql(f"SELECT * FROM '{tmp_path}/one{n}.parquet' ORDER BY ALL").fetchall()
        assert batch == alone and batch[0][-2:] == (
            f"blob{n}",
            dt.date(2026, 3, n + 1),
        )
        assert (
            duckdb.sql(f"DESCRIBE '{item.dest}'").fetchall()
            == duckdb.sql(f"DESCRIBE '{tmp_path}/one{n}.parquet'").fetchall()
        )
    assert not list((tmp_path / "lake").glob(".batch-*"))


def test_a_batch_split_across_arrow_batches_keeps_each_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lake, "_ARROW_ROWS", 2)  # files of 2 and 3 lines cut across batches
    other = [line.replace("UK-1,", "UK-2,") for line in GOOD]
    items = batch_items(tmp_path, [csv_text(*GOOD), csv_text(*other, GOOD[0])])
    con = lake.connect()
    try:
        counts = lake.convert_batch(con, items, datasets.orders("UK"), tmp_path / "lake")
    finally:
        con.close()
    assert counts == [2, 3]
    for n, item in enumerate(items):
        blobs = duckdb.sql(f"SELECT DISTINCT source_blob FROM '{item.dest}'").fetchall()
        assert (
            blobs == [(f"blob{n}",)]
            and len(duckdb.sql(f"FROM '{item.dest}'").fetchall()) == counts[n]
        )


def test_rows_out_of_file_order_write_nothing(tmp_path: Path) -> None:
    written = [tmp_path / "0.parquet", tmp_path / "1.parquet"]
    con = lake.connect()
    try:
        in_order = "SELECT * FROM (VALUES (1, 0), (2, 0), (3, 1)) t(x, __i)"
        assert lake._write_per_file(con, in_order, written) == [2, 1]
        back = "SELECT * FROM (VALUES (1, 1), (2, 0)) t(x, __i)"
        assert lake._write_per_file(con, back, written) is None  # the caller goes one by one
        again = "SELECT * FROM (VALUES (1, 0), (2, 1), (3, 0)) t(x, __i)"
        assert lake._write_per_file(con, again, written) is None
    finally:
        con.close()


@pytest.mark.parametrize(
    "bad",
    [
        csv_text("UK-9,1,2026-03-01 09:15:00,C1,SKU-1,two,10.50,,,completed,"),  # a bad value
        csv_text(),  # a header only
        csv_text("UK-9,1,2026-03-01 09:15:00,,SKU-1,2,10.50,,,completed,"),  # a blank required
        "order_id;order_line\n",  # a wrong delimiter
    ],
)
def test_a_batch_with_a_doubtful_file_writes_nothing(tmp_path: Path, bad: str) -> None:
    items = batch_items(tmp_path, [csv_text(*GOOD), bad])
    con = lake.connect()
    try:
        assert lake.convert_batch(con, items, datasets.orders("UK"), tmp_path / "lake") is None
    finally:
        con.close()
    assert not list((tmp_path / "lake").rglob("*.parquet"))  # the caller goes one by one


def test_a_batch_of_a_dataset_whose_columns_share_an_extras_name(tmp_path: Path) -> None:
    scv = datasets.SCV_CUSTOMERS
    header = ",".join(scv.column_names)
    items = []
    for n in range(2):
        src = tmp_path / f"scv{n}.csv"
        kinds = dict(scv.columns)
        row = ",".join(
            "UK" if c == "market" else "2026-03-01" if kinds[c] == "DATE"
            else "3" if kinds[c] != "VARCHAR" else f"v{n}"
            for c in scv.column_names
        )  # fmt: skip
        src.write_text(f"{header}\n{row}\n")
        extra = {"market": "'UK'", "file_date": f"DATE '2026-0{n + 1}-01'"}
        items.append(lake.BatchItem(src, tmp_path / "lake" / f"scv{n}.parquet", extra))
    con = lake.connect()
    try:
        counts = lake.convert_batch(con, items, scv, tmp_path / "lake")
        lake.convert_csv(con, items[0].csv_path, scv, tmp_path / "one.parquet", name="scv0",
                         extra=items[0].extra)  # fmt: skip
    finally:
        con.close()
    assert counts == [1, 1]
    assert (
        duckdb.sql(f"DESCRIBE '{items[0].dest}'").fetchall()
        == duckdb.sql(f"DESCRIBE '{tmp_path}/one.parquet'").fetchall()
    )
