"""The order importer on UCI Online Retail files (both layouts), into a warehouse fake."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devkit.importer import ImportReport, UnreadableFile, import_orders
from devkit.simulator.retail import order_id_for, parse_retail_csv, retail_order_payloads, variant_id_for
from shared.settings import Settings
from tests.fakes import MemoryWarehouse

ORIGINAL = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
SAMPLE = "X.1;X;InvoiceNo;StockCode;Description;Quantity;InvoiceDate;UnitPrice;CustomerID;Country\r\n"
SETTINGS = Settings(warehouse_url="duckdb:///:memory:")

# Line numbers in the comments: the header is line 1.
MIXED = ORIGINAL + "".join(
    [
        "536365,85123A,HEART HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n",  # 2
        "536365,POST,POSTAGE,1,2010-12-01 08:26:00,18.00,17850.0,United Kingdom\n",  # 3: non-product
        "536366,85035B,WHITE CANDLE,4,2010-12-01 08:28:00,1.25,13047.0,United Kingdom\n",  # 4
        "536367,85035b,white candle,2,2010-12-01 08:34:00,1.25,13047.0,United Kingdom\n",  # 5: case twin
        "536368,22139,RETROSPOT TEA SET,1,yesterday,4.95,13047.0,United Kingdom\n",  # 6: bad date
        "536369,21275,,-10,2010-12-01 09:00:00,0,,United Kingdom\n",  # 7: stock adjustment
        "C536370,85123A,HEART HOLDER,-2,2010-12-01 09:41:00,2.55,17850.0,United Kingdom\n",  # 8
        "C536370,22633,HAND WARMER,-3,2010-12-01 09:41:00,1.85,17850.0,United Kingdom\n",  # 9: no sale
        "536371,22633,HAND WARMER,6,2010-12-01 09:45:00,1.85,17850.0,United Kingdom,extra\n",  # 10
    ]
)


def _write(tmp_path: Path, text: str, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _run(path: Path, warehouse: MemoryWarehouse, **kwargs: Any) -> ImportReport:
    return import_orders(path, warehouse=warehouse, settings=SETTINGS, **kwargs)


def _counts(warehouse: MemoryWarehouse) -> dict[str, int]:
    return {table: len(rows) for table, rows in warehouse.tables.items()}


def test_original_layout_counts_and_rejections(tmp_path: Path) -> None:
    warehouse = MemoryWarehouse()
    report = _run(_write(tmp_path, MIXED), warehouse)
    assert report.fmt == "uci" and report.file_lines == 9
    assert (report.orders, report.lines, report.non_product_lines) == (3, 4, 1)
    assert (report.refunds, report.refund_lines) == (1, 1)
    assert (report.refunds_without_order, report.refund_lines_without_order) == (1, 1)
    assert report.stock_adjustments == 1
    assert dict(report.rejected) == {"InvoiceDate": 1, "wrong number of fields": 1}
    assert report.examples["InvoiceDate"][0][0] == 6
    assert report.examples["wrong number of fields"][0] == (10, "9, expected 8")
    assert _counts(warehouse) == {
        "raw_events": 5,
        "orders": 3,
        "order_line_items": 4,
        "refunds": 2,
        "refund_line_items": 2,
    }
    assert {r["source"] for r in warehouse.tables["raw_events"]} == {"import"}
    assert {r["status"] for r in warehouse.tables["raw_events"]} == {"loaded"}
    summary = report.summary()
    assert "rejected rows             2" in summary and "line 6" in summary


def test_non_product_codes_are_custom_line_items(tmp_path: Path) -> None:
    warehouse = MemoryWarehouse()
    _run(_write(tmp_path, MIXED), warehouse)
    post = next(r for r in warehouse.tables["order_line_items"] if r["sku"] == "POST")
    assert post["variant_id"] is None and post["product_id"] is None and post["title"] == "POSTAGE"
    heart = next(r for r in warehouse.tables["order_line_items"] if r["sku"] == "85123A")
    assert heart["variant_id"] == variant_id_for("85123A")


def test_case_twins_are_one_variant_and_keep_their_code(tmp_path: Path) -> None:
    warehouse = MemoryWarehouse()
    _run(_write(tmp_path, MIXED), warehouse)
    twins = [r for r in warehouse.tables["order_line_items"] if r["sku"] in ("85035B", "85035b")]
    assert sorted(r["sku"] for r in twins) == ["85035B", "85035b"]
    assert {r["variant_id"] for r in twins} == {variant_id_for("85035B")}
    assert len({r["product_id"] for r in twins}) == 1


def test_cancellation_refunds_the_matched_line_and_the_rest_has_no_order(tmp_path: Path) -> None:
    warehouse = MemoryWarehouse()
    _run(_write(tmp_path, MIXED), warehouse)
    heart = next(r for r in warehouse.tables["order_line_items"] if r["sku"] == "85123A")
    by_sku = {r["sku"]: r for r in warehouse.tables["refund_line_items"]}
    matched = by_sku["85123A"]
    assert (matched["line_item_id"], matched["order_id"], matched["quantity"]) == (
        heart["id"],
        heart["order_id"],
        2,
    )
    assert matched["variant_id"] == heart["variant_id"]
    assert str(matched["refund_created_at"]) == "2010-12-01 09:41:00+00:00"
    orphan = by_sku["22633"]
    # No earlier sale of 22633 to this customer: the cancellation invoice's own id stands in for the order.
    assert orphan["order_id"] == order_id_for("C536370") and orphan["quantity"] == 3
    assert orphan["order_id"] not in {o["id"] for o in warehouse.tables["orders"]}
    assert orphan["variant_id"] == variant_id_for("22633")


def test_a_cancellation_refunds_at_most_what_the_line_has_left(tmp_path: Path) -> None:
    text = ORIGINAL + "".join(
        [
            "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n",
            "C536366,85123A,HEART,-4,2010-12-01 09:00:00,2.55,17850.0,United Kingdom\n",
            "C536367,85123A,HEART,-5,2010-12-02 09:00:00,2.55,17850.0,United Kingdom\n",
            "C536368,85123a,HEART,-1,2010-12-02 10:00:00,2.55,12000.0,United Kingdom\n",  # another customer
        ]
    )
    warehouse = MemoryWarehouse()
    report = _run(_write(tmp_path, text), warehouse)
    assert (report.refunds, report.refunds_without_order) == (2, 2)
    matched = [r for r in warehouse.tables["refund_line_items"] if r["order_id"] == order_id_for("536365")]
    assert sorted(r["quantity"] for r in matched) == [2, 4]  # 4, then the 2 left of 6
    unmatched = [r for r in warehouse.tables["refund_line_items"] if r["order_id"] != order_id_for("536365")]
    assert sorted(r["quantity"] for r in unmatched) == [1, 3]
    assert len({r["id"] for r in warehouse.tables["refund_line_items"]}) == 4


def test_sample_layout_gets_the_replays_ids(tmp_path: Path) -> None:
    text = SAMPLE + "".join(
        [
            '1;2;536999;85123A;"WHITE ""HEART"" HOLDER";6;12/01/2010 08:26;2.55;NA;France\r\n',
            "2;41;544447;16161P;WRAP ENGLISH ROSE;25;2/20/11 11:39;0.42;13178;United Kingdom\r\n",
            "3;77;536999;POST;POSTAGE;1;12/01/2010 08:26;18;NA;France\r\n",
        ]
    )
    warehouse = MemoryWarehouse()
    report = _run(_write(tmp_path, text), warehouse)
    assert (report.orders, report.lines, report.non_product_lines) == (2, 3, 1)
    replay = retail_order_payloads(parse_retail_csv(text))
    assert {o["id"] for o in warehouse.tables["orders"]} == {p["id"] for p in replay}
    assert {li["id"] for li in warehouse.tables["order_line_items"]} == {
        li["id"] for p in replay for li in p["line_items"]
    }
    created = {o["name"]: str(o["created_at"]) for o in warehouse.tables["orders"]}
    assert created == {"#536999": "2010-12-01 08:26:00+00:00", "#544447": "2011-02-20 11:39:00+00:00"}
    anonymous = next(o for o in warehouse.tables["orders"] if o["name"] == "#536999")
    assert anonymous["customer_id"] is None and anonymous["shipping_country_code"] == "FR"
    known = next(o for o in warehouse.tables["orders"] if o["name"] == "#544447")
    assert known["customer_id"] == 6_100_000_000_000 + 13178


def test_importing_twice_adds_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, MIXED)
    warehouse = MemoryWarehouse()
    _run(path, warehouse)
    first = _counts(warehouse)
    raw_ids = [r["message_id"] for r in warehouse.tables["raw_events"]]
    again = _run(path, warehouse)
    assert _counts(warehouse) == first
    assert again.orders == 3  # the report says what the file holds; the warehouse ignores repeats
    other = MemoryWarehouse()
    _run(path, other)
    assert [r["message_id"] for r in other.tables["raw_events"]] == raw_ids
    assert [r["webhook_id"] for r in other.tables["orders"]] == [
        r["webhook_id"] for r in warehouse.tables["orders"]
    ]


def test_an_invoices_lines_may_interleave_within_a_batch_but_not_across(tmp_path: Path) -> None:
    text = ORIGINAL + "".join(
        [
            "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n",  # 2
            "536366,22633,WARMER,6,2010-12-01 08:26:00,1.85,13047.0,United Kingdom\n",  # 3
            "536365,71053,LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom\n",  # 4: back to 536365
            "536367,22632,WARMER RED,6,2010-12-01 08:30:00,1.85,13047.0,United Kingdom\n",  # 5
            "536368,22631,WARMER BLUE,6,2010-12-01 08:35:00,1.85,13047.0,United Kingdom\n",  # 6
            "536365,84406B,CREAM CUPID,8,2010-12-01 08:26:00,2.75,17850.0,United Kingdom\n",  # 7: too late
        ]
    )
    path = _write(tmp_path, text)
    together = MemoryWarehouse()
    report = _run(path, together)
    assert (report.orders, report.lines, report.rejected_rows) == (4, 6, 0)
    split = MemoryWarehouse()
    report = _run(path, split, batch_lines=4)
    assert report.orders == 4 and report.lines == 5
    assert dict(report.rejected) == {"invoice's lines too far apart in the file": 1}
    assert report.examples["invoice's lines too far apart in the file"][0] == (
        7,
        "536365 was written at line 2",
    )
    lines_of = Counter(r["order_id"] for r in split.tables["order_line_items"])
    assert lines_of[order_id_for("536365")] == 2


def test_gzip_is_read_transparently(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "orders.csv.gz"
    path.write_bytes(gzip.compress(MIXED.encode()))
    warehouse = MemoryWarehouse()
    report = _run(path, warehouse)
    assert (report.orders, report.lines, report.refunds) == (3, 4, 1)


def test_progress_is_told_the_lines_read(tmp_path: Path) -> None:
    seen: list[int] = []
    _run(_write(tmp_path, MIXED), MemoryWarehouse(), batch_lines=3, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 9 and len(seen) >= 3


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFile, match="InvoiceNo"):
        _run(_write(tmp_path, "a,b,c\n1,2,3\n"), MemoryWarehouse(), fmt="uci")
    with pytest.raises(UnreadableFile, match="Lineitem"):
        _run(_write(tmp_path, MIXED), MemoryWarehouse(), fmt="shopify")


def test_a_warehouse_failure_stops_the_import(tmp_path: Path) -> None:
    from shared.errors import TransientError

    warehouse = MemoryWarehouse()
    warehouse.fail_with = TransientError("warehouse unavailable")
    with pytest.raises(TransientError):
        _run(_write(tmp_path, MIXED), warehouse)


def test_bodies_are_the_bytes_json_dumps_writes(tmp_path: Path) -> None:
    import json

    from devkit.importer.bodies import _stdlib_encode, encode

    warehouse = MemoryWarehouse()
    _run(_write(tmp_path, MIXED), warehouse)
    for raw in warehouse.tables["raw_events"]:
        body = json.loads(raw["body"])
        assert encode(body) == _stdlib_encode(body) == raw["body"].encode("utf-8")
