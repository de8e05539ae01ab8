"""Running Admin API queries against the stand-in's store: schema, resolvers, pagination.

The schema (``schema.graphql``) is executed by graphql-core, so unknown fields, wrong
argument types and missing variables fail exactly as a GraphQL server fails them. Resolvers
read ``StoreState``; connections follow Shopify's cursor pagination (``first``/``after``,
``last``/``before``, at most 250 per page, opaque cursors, ``pageInfo``) and its search syntax
for the filters shopml uses (``updated_at:>'2024-01-01T00:00:00Z'``, ``created_at:>=...``,
``occurred_at:>...``, joined by spaces or ``AND``). Without the ``read_all_orders`` scope,
orders created more than 60 days before the store's present are invisible, as documented for
``read_orders``. Bulk operations (``bulk.py``) run the same resolvers with no page limit.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    get_named_type,
)

from devkit.shopify_standin.store import ALL_ORDERS_WINDOW, Ref, ShopData, StoreState, Subscription, gid

SCHEMA_PATH = Path(__file__).with_name("schema.graphql")
MAX_PAGE = 250
_SEARCH_TERM = re.compile(r"""(\w+):(>=|<=|>|<|=)?('([^']*)'|"([^"]*)"|(\S+))""")


def load_schema() -> GraphQLSchema:
    return build_schema(SCHEMA_PATH.read_text(encoding="utf-8"))


SCHEMA = load_schema()


@dataclass
class Context:
    """What one request may see: the store, its shop, the token's scopes, bulk or not."""

    store: StoreState
    data: ShopData
    scopes: frozenset[str]
    bulk: bool = False
    bulk_runner: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def now(self) -> datetime:
        return self.store.now(self.data.domain)


# --- search syntax --------------------------------------------------------------------------


def parse_search(query: str | None) -> list[tuple[str, str, str]]:
    """``updated_at:>'2024-01-01T00:00:00Z' AND created_at:<=2024-02-01`` → (field, op, value)."""
    if not query:
        return []
    terms = []
    for match in _SEARCH_TERM.finditer(query):
        name, op = match.group(1), match.group(2) or "="
        value = next(v for v in (match.group(4), match.group(5), match.group(6)) if v is not None)
        terms.append((name, op, value))
    return terms


def _time_key(text: str) -> str:
    """A search value or ``DateTime`` as a sortable UTC string (a date means its midnight UTC)."""
    text = text.strip()
    if len(text) == 10:
        text += "T00:00:00Z"
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def matches(node: Mapping[str, Any], terms: Iterable[tuple[str, str, str]]) -> bool:
    fields = {"updated_at": "updatedAt", "created_at": "createdAt", "occurred_at": "occurredAt"}
    for name, op, value in terms:
        key = fields.get(name)
        if key is None:
            continue  # Shopify ignores a filter it does not know for the resource
        have = node.get(key)
        if have is None:
            return False
        want = _time_key(value)
        ok = {
            ">": have > want,
            ">=": have >= want,
            "<": have < want,
            "<=": have <= want,
            "=": have[:10] == want[:10] if len(value) == 10 else have == want,
        }[op]
        if not ok:
            return False
    return True


# --- pagination -----------------------------------------------------------------------------


def _cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded))["k"]
    except (ValueError, KeyError, TypeError):
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}") from None


def _sort_key(node: Mapping[str, Any], sort_key: str) -> Any:
    ident = node.get("legacyResourceId") or node.get("id") or node.get("subjectId") or ""
    ident_key = [len(str(ident)), str(ident)]  # numeric order for numeric ids
    if sort_key == "UPDATED_AT":
        return [node.get("updatedAt") or "", *ident_key]
    if sort_key == "CREATED_AT":
        return [node.get("createdAt") or "", *ident_key]
    if "occurredAt" in node:
        return [node["occurredAt"], *ident_key]
    return ident_key


def paginate(items: Sequence[Mapping[str, Any]], args: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """One page of a connection: ``edges``, ``nodes``, ``pageInfo``, as the Admin API answers."""
    first, last = args.get("first"), args.get("last")
    if not ctx.bulk:
        if first is None and last is None:
            raise GraphQLError("you must provide one of first or last")
        for name, size in (("first", first), ("last", last)):
            if size is not None and not 0 <= size <= MAX_PAGE:
                raise GraphQLError(f"The '{name}' argument must be between 0 and {MAX_PAGE}.")
    sort_key = args.get("sortKey") or "ID"
    keyed = sorted(((_sort_key(n, sort_key), n) for n in items), key=lambda kn: kn[0])
    if args.get("reverse"):
        keyed.reverse()
    if args.get("after"):
        after = _uncursor(args["after"])
        keyed = [kn for kn in keyed if (kn[0] < after if args.get("reverse") else kn[0] > after)]
    if args.get("before"):
        before = _uncursor(args["before"])
        keyed = [kn for kn in keyed if (kn[0] > before if args.get("reverse") else kn[0] < before)]
    has_next = has_previous = False
    if first is not None and not ctx.bulk:
        has_next = len(keyed) > first
        keyed = keyed[:first]
    elif last is not None and not ctx.bulk:
        has_previous = len(keyed) > last
        keyed = keyed[-last:] if last else []
    edges = [{"cursor": _cursor(k), "node": n} for k, n in keyed]
    return {
        "edges": edges,
        "nodes": [e["node"] for e in edges],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous or bool(args.get("after")),
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


# --- objects --------------------------------------------------------------------------------


def parse_gid(value: str) -> tuple[str, str]:
    match = re.fullmatch(r"gid://shopify/(\w+)/([^/?]+)(\?.*)?", value or "")
    if not match:
        raise GraphQLError(
            f"Invalid global id '{value}'", extensions={"code": "argumentLiteralsIncompatible"}
        )
    return match.group(1), match.group(2) + (match.group(3) or "")


def visible_orders(ctx: Context) -> list[dict[str, Any]]:
    if "read_orders" not in ctx.scopes and "read_all_orders" not in ctx.scopes:
        raise GraphQLError(
            "Access denied for orders field. Required access: `read_orders` access scope.",
            extensions={"code": "ACCESS_DENIED"},
        )
    orders = list(ctx.data.orders.values())
    if "read_all_orders" in ctx.scopes:
        return orders
    cutoff = (ctx.now - ALL_ORDERS_WINDOW).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [o for o in orders if o["createdAt"] >= cutoff]


def find_node(ctx: Context, value: str) -> dict[str, Any] | None:
    type_name, ident = parse_gid(value)
    data = ctx.data
    if type_name == "Order":
        return next((o for o in visible_orders(ctx) if o["id"] == value), None)
    if type_name == "Refund":
        for refunds in data.order_refunds.values():
            if ident.isdigit() and int(ident) in refunds:
                return refunds[int(ident)]
        return None
    if type_name == "WebhookSubscription":
        sub = data.subscriptions.get(int(ident)) if ident.isdigit() else None
        return None if sub is None else sub.node()
    if type_name == "BulkOperation":
        return None if ctx.bulk_runner is None else ctx.bulk_runner.node(data.domain, value)
    if type_name == "InventoryLevel":
        return next((lvl for lvl in data.levels.values() if lvl["id"] == value), None)
    if type_name == "Shop":
        return shop_node(data)
    if not ident.isdigit():
        return None
    return ctx.store.resolve(data, Ref(type_name, int(ident)))


def shop_node(data: ShopData) -> dict[str, Any]:
    return {
        "__typename": "Shop",
        "id": gid("Shop", abs(hash(data.domain)) % 10**10),
        "name": data.domain.split(".")[0],
        "myshopifyDomain": data.domain,
        "ianaTimezone": data.timezone,
        "currencyCode": data.currency,
    }


# --- root fields ----------------------------------------------------------------------------

TOPIC_ENUMS = {
    "APP_UNINSTALLED": "app/uninstalled",
    "CUSTOMERS_CREATE": "customers/create",
    "CUSTOMERS_UPDATE": "customers/update",
    "INVENTORY_LEVELS_UPDATE": "inventory_levels/update",
    "ORDERS_CANCELLED": "orders/cancelled",
    "ORDERS_CREATE": "orders/create",
    "ORDERS_PAID": "orders/paid",
    "ORDERS_UPDATED": "orders/updated",
    "PRODUCTS_CREATE": "products/create",
    "PRODUCTS_DELETE": "products/delete",
    "PRODUCTS_UPDATE": "products/update",
    "REFUNDS_CREATE": "refunds/create",
}
_PUBSUB_URI = re.compile(r"pubsub://[a-z][a-z0-9-]{4,28}[a-z0-9]:[A-Za-z][\w.~+%-]{2,254}")


def check_uri(uri: str | None) -> str | None:
    """Why Shopify would refuse ``uri`` as a subscription address, or None.

    HTTPS URLs, ``pubsub://project:topic`` and EventBridge ARNs are what Shopify accepts. The
    stand-in also accepts plain HTTP to a loopback host, so a local stack can be subscribed.
    """
    if not uri:
        return "Address can't be blank"
    if uri.startswith("pubsub://"):
        return None if _PUBSUB_URI.fullmatch(uri) else "Address is invalid"
    if uri.startswith("arn:aws:events:"):
        return None
    if uri.startswith("https://"):
        return None
    if re.match(r"http://(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/", uri + "/"):
        return None
    return "Address protocol http:// is not supported" if uri.startswith("http://") else "Address is invalid"


class Root:
    """Resolvers of ``QueryRoot`` and ``Mutation`` (``field_resolver`` calls them by name)."""

    # -- queries ---------------------------------------------------------------------------
    def shop(self, ctx: Context, info: GraphQLResolveInfo) -> Any:
        return shop_node(ctx.data)

    def currentAppInstallation(self, ctx: Context, info: GraphQLResolveInfo) -> Any:
        return {
            "__typename": "AppInstallation",
            "id": gid("AppInstallation", 1),
            "accessScopes": [{"handle": s} for s in sorted(ctx.scopes)],
        }

    def node(self, ctx: Context, info: GraphQLResolveInfo, id: str) -> Any:
        return find_node(ctx, id)

    def nodes(self, ctx: Context, info: GraphQLResolveInfo, ids: list[str]) -> Any:
        if len(ids) > MAX_PAGE:
            raise GraphQLError(f"The 'ids' argument may hold at most {MAX_PAGE} ids.")
        return [find_node(ctx, i) for i in ids]

    def order(self, ctx: Context, info: GraphQLResolveInfo, id: str) -> Any:
        return find_node(ctx, id)

    def product(self, ctx: Context, info: GraphQLResolveInfo, id: str) -> Any:
        return find_node(ctx, id)

    def webhookSubscription(self, ctx: Context, info: GraphQLResolveInfo, id: str) -> Any:
        return find_node(ctx, id)

    def orders(self, ctx: Context, info: GraphQLResolveInfo, **args: Any) -> Any:
        terms = parse_search(args.get("query"))
        return paginate([o for o in visible_orders(ctx) if matches(o, terms)], args, ctx)

    def products(self, ctx: Context, info: GraphQLResolveInfo, **args: Any) -> Any:
        terms = parse_search(args.get("query"))
        return paginate([p for p in ctx.data.products.values() if matches(p, terms)], args, ctx)

    def productVariants(self, ctx: Context, info: GraphQLResolveInfo, **args: Any) -> Any:
        terms = parse_search(args.get("query"))
        return paginate([v for v in ctx.data.variants.values() if matches(v, terms)], args, ctx)

    def inventoryItems(self, ctx: Context, info: GraphQLResolveInfo, **args: Any) -> Any:
        terms = parse_search(args.get("query"))
        return paginate([i for i in ctx.data.inventory_items.values() if matches(i, terms)], args, ctx)

    def locations(self, ctx: Context, info: GraphQLResolveInfo, **args: Any) -> Any:
        return paginate(list(ctx.data.locations.values()), args, ctx)

    def deletionEvents(self, ctx: Context, info: GraphQLResolveInfo, **args: Any) -> Any:
        terms = parse_search(args.get("query"))
        kinds = set(args.get("subjectTypes") or ["PRODUCT", "COLLECTION"])
        events = [e for e in ctx.data.deletion_events if e["subjectType"] in kinds and matches(e, terms)]
        return paginate(events, args, ctx)

    def webhookSubscriptions(self, ctx: Context, info: GraphQLResolveInfo, **args: Any) -> Any:
        topics = set(args.get("topics") or TOPIC_ENUMS)
        subs = [
            s.node()
            for s in ctx.data.subscriptions.values()
            if s.topic in topics and (not args.get("uri") or s.uri == args["uri"])
        ]
        return paginate(subs, args, ctx)

    def currentBulkOperation(self, ctx: Context, info: GraphQLResolveInfo, type: str = "QUERY") -> Any:
        return None if ctx.bulk_runner is None else ctx.bulk_runner.current(ctx.data.domain)

    # -- mutations -------------------------------------------------------------------------
    def webhookSubscriptionCreate(
        self, ctx: Context, info: GraphQLResolveInfo, topic: str, webhookSubscription: dict[str, Any]
    ) -> Any:
        uri = webhookSubscription.get("uri")
        problem = check_uri(uri)
        if problem is None and any(
            s.topic == topic and s.uri == uri for s in ctx.data.subscriptions.values()
        ):
            problem = "Address for this topic has already been taken"
        if problem is not None:
            return {
                "webhookSubscription": None,
                "userErrors": [{"field": ["webhookSubscription", "uri"], "message": problem}],
            }
        stamp = ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        sub = Subscription(
            id=ctx.store.new_id(),
            topic=topic,
            uri=str(uri),
            format=webhookSubscription.get("format") or "JSON",
            filter=webhookSubscription.get("filter"),
            include_fields=list(webhookSubscription.get("includeFields") or []),
            created_at=stamp,
            updated_at=stamp,
        )
        ctx.data.subscriptions[sub.id] = sub
        return {"webhookSubscription": sub.node(), "userErrors": []}

    def webhookSubscriptionUpdate(
        self, ctx: Context, info: GraphQLResolveInfo, id: str, webhookSubscription: dict[str, Any]
    ) -> Any:
        _, ident = parse_gid(id)
        sub = ctx.data.subscriptions.get(int(ident)) if ident.isdigit() else None
        if sub is None:
            return {
                "webhookSubscription": None,
                "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
            }
        uri = webhookSubscription.get("uri") or sub.uri
        problem = check_uri(uri)
        if problem is not None:
            return {
                "webhookSubscription": None,
                "userErrors": [{"field": ["webhookSubscription", "uri"], "message": problem}],
            }
        sub.uri = uri
        sub.format = webhookSubscription.get("format") or sub.format
        if "filter" in webhookSubscription:
            sub.filter = webhookSubscription["filter"]
        if "includeFields" in webhookSubscription:
            sub.include_fields = list(webhookSubscription["includeFields"] or [])
        sub.updated_at = ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"webhookSubscription": sub.node(), "userErrors": []}

    def webhookSubscriptionDelete(self, ctx: Context, info: GraphQLResolveInfo, id: str) -> Any:
        _, ident = parse_gid(id)
        if not ident.isdigit() or ctx.data.subscriptions.pop(int(ident), None) is None:
            return {
                "deletedWebhookSubscriptionId": None,
                "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
            }
        return {"deletedWebhookSubscriptionId": id, "userErrors": []}

    def bulkOperationRunQuery(self, ctx: Context, info: GraphQLResolveInfo, query: str) -> Any:
        return ctx.bulk_runner.start(ctx, query)

    def bulkOperationCancel(self, ctx: Context, info: GraphQLResolveInfo, id: str) -> Any:
        return ctx.bulk_runner.cancel(ctx, id)


ROOT = Root()


def _computed(ctx: Context, parent: Mapping[str, Any], name: str, args: Mapping[str, Any]) -> Any:
    """Fields computed from the store when read rather than stored on the object."""
    typename = parent.get("__typename")
    if typename == "Order" and name == "refunds":
        refunds = ctx.store.refunds_of(ctx.data, int(parent["legacyResourceId"]))
        return refunds[: args["first"]] if args.get("first") is not None else refunds
    if typename == "InventoryItem" and name == "inventoryLevels":
        levels = ctx.store.levels_of_item(ctx.data, int(parent["legacyResourceId"]))
        return [lvl for lvl in levels if matches(lvl, parse_search(args.get("query")))]
    if typename == "Location" and name == "inventoryLevels":
        levels = ctx.store.levels_at(ctx.data, int(parent["legacyResourceId"]))
        return [lvl for lvl in levels if matches(lvl, parse_search(args.get("query")))]
    if typename == "InventoryLevel" and name == "quantities":
        return [
            {"name": n, "quantity": parent.get("available") or 0, "updatedAt": parent["updatedAt"]}
            for n in args.get("names") or []
            if n in ("available", "on_hand")
        ]
    return _MISSING


_MISSING = object()


def field_resolver(source: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    ctx: Context = info.context
    if source is ROOT:
        return getattr(ROOT, info.field_name)(ctx, info, **args)
    if not isinstance(source, Mapping):
        return None
    value = _computed(ctx, source, info.field_name, args)
    if value is _MISSING:
        value = source.get(info.field_name)
    if isinstance(value, Ref):
        value = ctx.store.resolve(ctx.data, value)
    named = get_named_type(info.return_type)
    if named.name.endswith("Connection") and isinstance(value, list):
        return paginate(value, args, ctx)
    return value


Runner = Callable[..., Any]
