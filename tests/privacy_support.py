"""Data for the privacy tests: two customers' events in two shops, loaded through the real
validation and load path, and a scan that finds a person's traces in every table.

Imports only the standard library and ``shared`` (the BigQuery contract run uses it too).
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.envelope import PubSubMessage
from shared.errors import StreamingBufferBusy
from shared.loading import load
from shared.logs import get_logger
from shared.privacy.requests import PrivacyRequest, parse_privacy_request
from shared.privacy.scrub import keyed_hash

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "webhooks"
SHOP = "privacy-shop.myshopify.com"
OTHER_SHOP = "other-shop.myshopify.com"
KEY = "privacy-test-key"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

# Customer A: the one whose data is requested and redacted.
A_ID = 706405506930370084
A_EMAIL = "bob@example.com"
A_PHONE = "+16135551111"
A_ORDER = 820982911946154508
# Customer B: a bystander whose data must stay.
B_ID = 115310627314723954
B_EMAIL = "jon@example.com"
B_ORDER = 820982911946159999
# What must not remain anywhere after customers/redact of A.
A_TRACES = [
    str(A_ID),
    A_EMAIL,
    A_PHONE,
    "Biller",
    "O'Connor",
    keyed_hash(KEY.encode(), "email", A_EMAIL),
    keyed_hash(KEY.encode(), "phone", A_PHONE),
]


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return loaded


def push(
    body: Any, topic: str, webhook_id: str, shop: str = SHOP, message_id: str | None = None
) -> dict[str, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    attributes = {
        "shopify_topic": topic,
        "shop_domain": shop,
        "webhook_id": webhook_id,
        "api_version": "2025-07",
        "triggered_at": "2025-03-01T10:15:00Z",
        "received_at": "2025-03-01T10:15:01+00:00",
        "source": "webhook",
    }
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": message_id or f"m-{webhook_id}",
        }
    }


def a_order() -> dict[str, Any]:
    """An order of customer A, shipped and billed to A."""
    order = fixture("orders_create.json")
    customer = fixture("customers_create.json")
    order["email"] = order["contact_email"] = A_EMAIL
    order["phone"] = A_PHONE
    order["customer"] = {
        **order["customer"],
        "id": A_ID,
        "email": A_EMAIL,
        "phone": A_PHONE,
        "first_name": "Bob",
        "last_name": "Biller",
        "admin_graphql_api_id": f"gid://shopify/Customer/{A_ID}",
        "default_address": customer["default_address"],
    }
    for side in ("shipping_address", "billing_address"):
        order[side] = {**customer["default_address"], "customer_id": A_ID}
    return order


def b_order() -> dict[str, Any]:
    order = fixture("orders_create.json")
    order["id"] = B_ORDER
    order["admin_graphql_api_id"] = f"gid://shopify/Order/{B_ORDER}"
    return order


def events(shop: str = SHOP, prefix: str = "") -> list[tuple[Any, str, str]]:
    """(body, topic, webhook id) of a small store history with both customers."""
    a = a_order()
    broken = copy.deepcopy(a)
    broken["created_at"] = "not a time"  # quarantined, body kept (scrubbed)
    refund = fixture("refunds_create.json")
    refund["order_id"] = A_ORDER
    return [
        (fixture("customers_create.json"), "customers/create", f"{prefix}wh-a-customer"),
        (a, "orders/create", f"{prefix}wh-a-order"),
        (dict(a, updated_at="2022-01-01T10:00:00-05:00"), "orders/updated", f"{prefix}wh-a-order-2"),
        (broken, "orders/updated", f"{prefix}wh-a-broken"),
        (refund, "refunds/create", f"{prefix}wh-a-refund"),
        (b_order(), "orders/create", f"{prefix}wh-b-order"),
        (fixture("products_create.json"), "products/create", f"{prefix}wh-product"),
        (b"{not json " + A_EMAIL.encode(), "orders/create", f"{prefix}wh-a-garbage"),
    ]


def load_history(warehouse: Any, *, store_pii: bool = False, shops: Iterable[str] = (SHOP,)) -> None:
    logger = get_logger("privacy-test", "WARNING")
    for n, shop in enumerate(shops):
        for body, topic, webhook_id in events(shop, prefix=f"s{n}-"):
            load(
                push(body, topic, webhook_id, shop),
                f"ce-{webhook_id}",
                warehouse.write_batch,
                logger,
                store_pii=store_pii,
                pii_hash_key=KEY,
                now=lambda: NOW,
            )


def privacy_message(topic: str, body: dict[str, Any], webhook_id: str, shop: str = SHOP) -> PubSubMessage:
    return PubSubMessage(
        data=json.dumps(body).encode(),
        attributes={
            "shopify_topic": topic,
            "shop_domain": shop,
            "webhook_id": webhook_id,
            "api_version": "2025-07",
            "triggered_at": "2025-03-02T09:00:00Z",
            "received_at": "2025-03-02T09:00:01+00:00",
            "source": "webhook",
        },
        message_id=f"pm-{webhook_id}",
        publish_time=NOW + timedelta(days=1),
    )


def redact_a(webhook_id: str = "wh-redact-a") -> PrivacyRequest:
    body = {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "customer": {"id": A_ID, "email": A_EMAIL, "phone": A_PHONE},
        "orders_to_redact": [A_ORDER],
    }
    return parse_privacy_request(privacy_message("customers/redact", body, webhook_id))


def data_request_a(webhook_id: str = "wh-request-a") -> PrivacyRequest:
    body = {
        "shop_id": 954889,
        "shop_domain": SHOP,
        "orders_requested": [A_ORDER],
        "customer": {"id": A_ID, "email": A_EMAIL, "phone": A_PHONE},
        "data_request": {"id": 9999},
    }
    return parse_privacy_request(privacy_message("customers/data_request", body, webhook_id))


def shop_redact(shop: str = SHOP, webhook_id: str = "wh-shop-redact") -> PrivacyRequest:
    return parse_privacy_request(
        privacy_message("shop/redact", {"shop_id": 954889, "shop_domain": shop}, webhook_id, shop)
    )


def _texts(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    else:
        yield str(value)


def traces(warehouse: Any, needles: Iterable[str], *, skip: Iterable[str] = ()) -> dict[str, int]:
    """Rows per table in which any needle appears in any column (case-insensitive)."""
    wanted = [n.lower() for n in needles if n]
    found: dict[str, int] = {}
    for table in sorted(warehouse.schema.tables):
        if table in set(skip) or table.startswith("contract_"):
            continue
        for row in warehouse.query(f"SELECT * FROM {table}"):  # noqa: S608 - names from the schema
            text = "\n".join(_texts(row)).lower()
            if any(n in text for n in wanted):
                found[table] = found.get(table, 0) + 1
    return found


def rows_of_shop(warehouse: Any, shop: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for table, spec in sorted(warehouse.schema.tables.items()):
        if "shop_domain" in spec.by_name and not table.startswith("contract_"):
            sql = f"SELECT COUNT(*) AS n FROM {table} WHERE shop_domain = @s"  # noqa: S608 - from the schema
            n = warehouse.query(sql, {"s": shop})[0]["n"]
            if n:
                found[table] = n
    return found


BUFFER = timedelta(minutes=30)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class StreamingBufferWarehouse:
    """A warehouse (DuckDB in the tests) that refuses UPDATE and DELETE as BigQuery does: while
    a table holds rows streamed less than 30 minutes ago that the statement would touch."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self.inner, self.clock = inner, clock
        self.schema = inner.schema
        self.streamed: dict[str, datetime] = {}
        self.refusals = 0

    def _stream(self, tables: Any) -> None:
        for table in tables:
            self.streamed[table] = self.clock()

    def insert_rows(self, table: str, rows: Any, row_ids: Any = None) -> None:
        self.inner.insert_rows(table, rows, row_ids)
        self._stream([table])

    def write_batch(self, rows_by_table: Mapping[str, Any], row_ids_by_table: Any = None) -> None:
        self.inner.write_batch(rows_by_table, row_ids_by_table)
        self._stream(rows_by_table)

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        return self.inner.query(sql, params)

    def _refuse_if_buffered(self, table: str, where: str, params: Any) -> None:
        at = self.streamed.get(table)
        if at is None or self.clock() - at >= BUFFER:
            return
        hit = self.inner.query(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params)[0]["n"]  # noqa: S608
        if hit:
            self.refusals += 1
            raise StreamingBufferBusy(
                f"UPDATE or DELETE statement over table {table} would affect rows in the streaming buffer"
            )

    def delete_rows(self, table: str, where: str, params: Any = None) -> int:
        self._refuse_if_buffered(table, where, params)
        return self.inner.delete_rows(table, where, params)

    def update_rows(self, table: str, values: Mapping[str, Any], where: str, params: Any = None) -> int:
        self._refuse_if_buffered(table, where, params)
        return self.inner.update_rows(table, values, where, params)
