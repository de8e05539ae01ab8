"""The stand-in's HTTP server: ``POST /admin/api/<version>/graphql.json`` as Shopify answers it.

Per request, in Shopify's order: the API version in the path (unknown → 404), the
``X-Shopify-Access-Token`` header (missing or unknown → 401 with Shopify's message; a token
belongs to one shop and carries its scopes), the JSON body, GraphQL parsing and validation
(errors answered with 200 and ``errors``, as Shopify does), the requested cost (over 1,000 →
``MAX_COST_EXCEEDED``), the leaky bucket of that app and shop (not enough points →
``THROTTLED``, nothing run), execution, the actual cost refunded, and ``extensions.cost``
with ``throttleStatus`` on every answer. Faults can be injected for tests (``fail_next``):
429 with ``Retry-After`` or a 5xx, as Shopify sends under load. ``stats`` counts calls,
throttled answers and points per shop, for the benchmark.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from graphql import (
    ExecutionResult,
    FragmentDefinitionNode,
    GraphQLError,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.error import GraphQLSyntaxError

from devkit.shopify_standin.bulk import BulkRunner
from devkit.shopify_standin.cost import MAX_QUERY_COST, CostCalculator, LeakyBucket
from devkit.shopify_standin.engine import ROOT, SCHEMA, Context, field_resolver
from devkit.shopify_standin.store import StoreState

SUPPORTED_VERSIONS = ("2025-01", "2025-04", "2025-07", "2025-10", "2026-01", "2026-04", "2026-07", "unstable")
DEFAULT_SCOPES = frozenset(
    {"read_orders", "read_all_orders", "read_products", "read_inventory", "read_locations"}
)
_PATH = re.compile(r"^/admin/api/([^/]+)/graphql\.json$")
DOCS = "https://shopify.dev/api/usage/limits#rate-limits"


@dataclass
class ShopStats:
    calls: int = 0
    throttled: int = 0
    failed_injected: int = 0
    requested_points: int = 0
    actual_points: int = 0
    bulk_downloads: int = 0


@dataclass
class Token:
    shop: str
    scopes: frozenset[str]


@dataclass
class StandIn:
    """A running stand-in: its store, tokens, buckets and HTTP server."""

    state: StoreState = field(default_factory=StoreState)
    maximum_available: float = 2000.0
    restore_rate: float = 100.0
    bulk_delay_s: float = 0.05
    tokens: dict[str, Token] = field(default_factory=dict)
    stats: dict[str, ShopStats] = field(default_factory=lambda: defaultdict(ShopStats))
    _buckets: dict[str, LeakyBucket] = field(default_factory=dict)
    _faults: list[tuple[int, float | None]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.bulk = BulkRunner(lambda: self.url, delay_s=self.bulk_delay_s)

    # -- configuration ---------------------------------------------------------------------
    def add_token(self, token: str, shop: str, scopes: Iterable[str] = DEFAULT_SCOPES) -> None:
        self.tokens[token] = Token(shop, frozenset(scopes))
        self.state.shop(shop)

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """The next ``count`` requests answer ``status`` (429 carries ``Retry-After``)."""
        with self._lock:
            self._faults.extend([(status, retry_after)] * count)

    def bucket(self, shop: str) -> LeakyBucket:
        with self._lock:
            if shop not in self._buckets:
                self._buckets[shop] = LeakyBucket(self.maximum_available, self.restore_rate)
            return self._buckets[shop]

    # -- server ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            return ""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> StandIn:
        stand_in = self

        class Handler(_Handler):
            owner = stand_in

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="shopify-standin").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandIn:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one GraphQL request ---------------------------------------------------------------
    def take_fault(self) -> tuple[int, float | None] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def graphql(self, token: Token, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to one GraphQL request of an authenticated token (HTTP 200)."""
        stats = self.stats[token.shop]
        stats.calls += 1
        bucket = self.bucket(token.shop)
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            return {
                "errors": [{"message": "Parameter Missing or Invalid", "extensions": {"code": "BAD_REQUEST"}}]
            }
        try:
            document = parse(query)
        except GraphQLSyntaxError as exc:
            return {"errors": [exc.formatted]}
        errors = validate(SCHEMA, document)
        if errors:
            return {"errors": [e.formatted for e in errors]}
        operation = get_operation_ast(document, body.get("operationName"))
        if operation is None:
            return {"errors": [{"message": "An operation name is required"}]}
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        calculator = CostCalculator(SCHEMA, operation, fragments, body.get("variables"))
        requested = calculator.requested()
        if requested > MAX_QUERY_COST:
            return {
                "errors": [
                    {
                        "message": f"Query cost is {requested}, which exceeds the single query max cost "
                        f"limit ({MAX_QUERY_COST}).",
                        "extensions": {
                            "code": "MAX_COST_EXCEEDED",
                            "cost": requested,
                            "maxCost": MAX_QUERY_COST,
                        },
                    }
                ],
                "extensions": {
                    "cost": {
                        "requestedQueryCost": requested,
                        "actualQueryCost": None,
                        "throttleStatus": bucket.status(),
                    }
                },
            }
        if not bucket.take(requested):
            stats.throttled += 1
            return {
                "errors": [
                    {"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": DOCS}}
                ],
                "extensions": {
                    "cost": {
                        "requestedQueryCost": requested,
                        "actualQueryCost": None,
                        "throttleStatus": bucket.status(),
                    }
                },
            }
        ctx = Context(self.state, self.state.shop(token.shop), token.scopes, bulk_runner=self.bulk)
        with self.state.lock:
            result = execute(
                SCHEMA,
                document,
                root_value=ROOT,
                context_value=ctx,
                variable_values=body.get("variables"),
                operation_name=body.get("operationName"),
                field_resolver=field_resolver,
            )
        assert isinstance(result, ExecutionResult)
        actual = calculator.actual(result.data)
        bucket.refund(requested - actual)
        stats.requested_points += requested
        stats.actual_points += actual
        answer: dict[str, Any] = {}
        if result.errors:
            answer["errors"] = [_format(e) for e in result.errors]
        answer["data"] = result.data
        answer["extensions"] = {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": bucket.status(),
            }
        }
        return answer


def _format(error: GraphQLError) -> dict[str, Any]:
    formatted = dict(error.formatted)
    return formatted


class _Handler(BaseHTTPRequestHandler):
    owner: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        content_type = (
            "application/jsonl" if isinstance(payload, bytes) else "application/json; charset=utf-8"
        )
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        match = re.fullmatch(r"/standin/bulk/(\d+)\.jsonl", self.path.split("?")[0])
        key = match.group(1) if match else ""
        body = self.owner.bulk.files.get(key)
        if body is None:
            self._send(404, {"errors": "Not Found"})
            return
        op = next((o for o in self.owner.bulk.operations.values() if o.id.endswith("/" + key)), None)
        if op is not None:
            self.owner.stats[op.shop].bulk_downloads += 1
        self._send(200, body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        match = _PATH.match(self.path.split("?")[0])
        if match is None or match.group(1) not in SUPPORTED_VERSIONS:
            self._send(404, {"errors": "Not Found"})
            return
        token = self.owner.tokens.get(self.headers.get("X-Shopify-Access-Token") or "")
        if token is None:
            self._send(
                401,
                {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
            )
            return
        fault = self.owner.take_fault()
        if fault is not None:
            status, retry_after = fault
            self.owner.stats[token.shop].failed_injected += 1
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            message = "Exceeded rate limit" if status == 429 else "Internal error"
            self._send(status, {"errors": message}, headers)
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send(400, {"errors": "Bad Request: the body is not JSON"})
            return
        if not isinstance(body, dict):
            self._send(400, {"errors": "Bad Request: the body is not a JSON object"})
            return
        self._send(200, self.owner.graphql(token, body), {"X-Request-Id": "standin"})
