"""Bulk query operations: ``bulkOperationRunQuery``, polling, and the JSONL result.

As documented on shopify.dev ("Perform bulk operations with the GraphQL Admin API"): one bulk
query per shop at a time; the query's connections need no ``first`` (everything is
returned); at most five connections and two levels of nesting; no connection inside a list
field. The result is a JSONL file: one line per object of every connection, a nested
connection's objects on their own lines with ``__parentId`` (the parent's ``id``) instead of
being nested, children after their parent. The operation moves ``CREATED`` → ``RUNNING`` →
``COMPLETED`` (or ``FAILED``/``CANCELED``); ``objectCount`` counts every line,
``rootObjectCount`` the top-level ones; ``url`` points at the file.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    GraphQLList,
    GraphQLNonNull,
    OperationDefinitionNode,
    get_named_type,
    graphql_sync,
    parse,
    validate,
)
from graphql.error import GraphQLSyntaxError

from devkit.shopify_standin.engine import ROOT, SCHEMA, Context, field_resolver, parse_gid
from devkit.shopify_standin.store import gid

MAX_CONNECTIONS = 5
MAX_DEPTH = 2  # levels of nested connections below the top-level one


@dataclass
class BulkOperation:
    id: str
    shop: str
    query: str
    status: str
    created_at: str
    completed_at: str | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = None
    error_code: str | None = None
    cancel: bool = False

    def node(self) -> dict[str, Any]:
        return {
            "__typename": "BulkOperation",
            "id": self.id,
            "status": self.status,
            "type": "QUERY",
            "errorCode": self.error_code,
            "createdAt": self.created_at,
            "completedAt": self.completed_at,
            "objectCount": str(self.object_count),
            "rootObjectCount": str(self.root_object_count),
            "fileSize": None if self.file_size is None else str(self.file_size),
            "url": self.url,
            "partialDataUrl": None,
            "query": self.query,
        }


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def check_bulk_query(query: str) -> str | None:
    """Why Shopify would refuse ``query`` as a bulk query, or None."""
    try:
        document = parse(query)
    except GraphQLSyntaxError as exc:
        return f"Invalid bulk query: {exc.message}"
    errors = validate(SCHEMA, document)
    if errors:
        return f"Invalid bulk query: {errors[0].message}"
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation.value != "query":
        return "Bulk queries must contain exactly one query operation"
    connections = 0
    problem: str | None = None

    def walk(parent: Any, selections: Any, depth: int, in_list: bool) -> None:
        nonlocal connections, problem
        for node in selections or ():
            if not isinstance(node, FieldNode) or node.name.value.startswith("__"):
                continue
            definition = getattr(parent, "fields", {}).get(node.name.value)
            if definition is None:
                continue
            named = get_named_type(definition.type)
            if named.name.endswith("Connection"):
                connections += 1
                if in_list:
                    problem = (
                        "Queries that contain a connection field within a list field "
                        "are not currently supported."
                    )
                if depth > MAX_DEPTH:
                    problem = f"Bulk queries cannot contain more than {MAX_DEPTH} levels of nesting."
                walk(named, node.selection_set.selections if node.selection_set else (), depth + 1, in_list)
            elif node.selection_set is not None:
                listed = _is_list(definition.type) and not parent.name.endswith("Connection")
                walk(named, node.selection_set.selections, depth, in_list or listed)

    walk(SCHEMA.query_type, operations[0].selection_set.selections, 0, False)
    top = [s for s in operations[0].selection_set.selections if isinstance(s, FieldNode)]
    if any(s.name.value in ("node", "nodes") for s in top):
        return "Bulk queries cannot use the top-level node or nodes fields."
    if connections == 0:
        return "Bulk queries must contain at least one connection."
    if connections > MAX_CONNECTIONS:
        return f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections."
    return problem


def _connection_nodes(value: Any) -> list[Any] | None:
    if isinstance(value, dict) and ("edges" in value or "nodes" in value):
        if "edges" in value:
            return [edge.get("node") for edge in value["edges"] or [] if isinstance(edge, dict)]
        return list(value["nodes"] or [])
    return None


def flatten(data: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The JSONL lines of a bulk result (``__parentId`` for nested objects) and the root count."""
    lines: list[dict[str, Any]] = []
    roots = 0

    def emit(node: dict[str, Any], parent_id: str | None) -> None:
        line: dict[str, Any] = {}
        children: list[list[Any]] = []
        for key, value in node.items():
            nested = _connection_nodes(value)
            if nested is None:
                line[key] = value
            else:
                children.append(nested)
        if parent_id is not None:
            line["__parentId"] = parent_id
        lines.append(line)
        for nested in children:
            for child in nested:
                if isinstance(child, dict):
                    emit(child, node.get("id"))

    for value in data.values():
        nodes = _connection_nodes(value)
        for node in nodes or []:
            if isinstance(node, dict):
                roots += 1
                emit(node, None)
    return lines, roots


class BulkRunner:
    """Runs bulk queries in background threads and keeps their results for download."""

    def __init__(self, base_url: Callable[[], str], delay_s: float = 0.05) -> None:
        self._base_url = base_url
        self.delay_s = delay_s  # how long an operation stays CREATED/RUNNING at least
        self.operations: dict[str, BulkOperation] = {}
        self.files: dict[str, bytes] = {}
        self._current: dict[str, str] = {}
        self._lock = threading.Lock()
        self._seq = 0

    def node(self, shop: str, op_id: str) -> dict[str, Any] | None:
        op = self.operations.get(op_id)
        return None if op is None or op.shop != shop else op.node()

    def current(self, shop: str) -> dict[str, Any] | None:
        op_id = self._current.get(shop)
        return None if op_id is None else self.operations[op_id].node()

    def start(self, ctx: Context, query: str) -> dict[str, Any]:
        shop = ctx.data.domain
        with self._lock:
            running = self._current.get(shop)
            if running and self.operations[running].status in ("CREATED", "RUNNING"):
                return {
                    "bulkOperation": None,
                    "userErrors": [
                        {
                            "field": ["query"],
                            "message": "A bulk query operation for this app and shop is already in "
                            f"progress: {running}.",
                            "code": "OPERATION_IN_PROGRESS",
                        }
                    ],
                }
            problem = check_bulk_query(query)
            if problem is not None:
                return {
                    "bulkOperation": None,
                    "userErrors": [{"field": ["query"], "message": problem, "code": "INVALID"}],
                }
            self._seq += 1
            op = BulkOperation(
                id=gid("BulkOperation", 7_000_000 + self._seq),
                shop=shop,
                query=query,
                status="CREATED",
                created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            )
            self.operations[op.id] = op
            self._current[shop] = op.id
        with ctx.store.lock:
            snapshot = ctx.data.snapshot()
        bulk_ctx = Context(ctx.store, snapshot, ctx.scopes, bulk=True, bulk_runner=self)
        threading.Thread(target=self._run, args=(op, bulk_ctx), daemon=True, name="standin-bulk").start()
        return {"bulkOperation": op.node(), "userErrors": []}

    def cancel(self, ctx: Context, op_id: str) -> dict[str, Any]:
        parse_gid(op_id)
        op = self.operations.get(op_id)
        if op is None or op.shop != ctx.data.domain:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
            }
        if op.status in ("CREATED", "RUNNING"):
            op.cancel = True
            op.status = "CANCELING"
        return {"bulkOperation": op.node(), "userErrors": []}

    def _run(self, op: BulkOperation, ctx: Context) -> None:
        time.sleep(self.delay_s)
        op.status = "RUNNING"
        try:
            result = graphql_sync(
                SCHEMA, op.query, root_value=ROOT, context_value=ctx, field_resolver=field_resolver
            )
            if result.errors:
                op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
                return
            lines, roots = flatten(result.data or {})
            time.sleep(self.delay_s)
            if op.cancel:
                op.status = "CANCELED"
                return
            body = b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
            key = op.id.rsplit("/", 1)[1]
            self.files[key] = body
            op.object_count, op.root_object_count = len(lines), roots
            op.file_size = len(body)
            op.url = f"{self._base_url()}/standin/bulk/{key}.jsonl" if lines else None
            op.completed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            op.status = "COMPLETED"
        except Exception:
            op.status, op.error_code = "FAILED", "INTERNAL_SERVER_ERROR"
