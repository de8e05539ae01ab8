"""Calculated query cost and the leaky bucket, as the Admin API documents them.

shopify.dev, "GraphQL Admin API rate limits": every field has a cost, decided by what it
returns: a scalar or enum 0, an object 1, a connection 2 plus the number of objects asked for
(``first``/``last``) times what each costs; a mutation 10. Shopify computes the *requested*
cost before running a query (a query may not request more than 1,000) and the *actual* cost
after (connections that returned fewer edges, objects that were null); the bucket must hold
the requested cost before the query runs and gets the difference back afterwards. The bucket
holds ``maximumAvailable`` points and refills at ``restoreRate`` points per second (the
standard plan's 100/s; 1,000 or 2,000 points depending on the plan and API version).

Approximations, said here so nobody mistakes them for Shopify's exact figures: a plain list
of objects is requested at ``len(ids)`` (``nodes(ids:)``), its ``first`` argument
(``Order.refunds(first:)``) or once (``taxLines``), and costs what it actually returned;
interfaces and unions count the selections of every fragment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)

MAX_QUERY_COST = 1000
MUTATION_COST = 10


def _is_connection(type_name: str) -> bool:
    return type_name.endswith("Connection")


class CostCalculator:
    """Requested and actual cost of one operation of a parsed document."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any] | None,
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.variables = dict(variables or {})

    def _fields(self, parent: Any, selection_set: SelectionSetNode | None) -> list[tuple[Any, FieldNode]]:
        """(named parent type, field node) pairs, fragments expanded."""
        out: list[tuple[Any, FieldNode]] = []
        if selection_set is None:
            return out
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.append((parent, selection))
            elif isinstance(selection, InlineFragmentNode):
                target = (
                    self.schema.get_type(selection.type_condition.name.value)
                    if selection.type_condition
                    else parent
                )
                out.extend(self._fields(target, selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    out.extend(self._fields(target, fragment.selection_set))
        return out

    def _argument(self, node: FieldNode, name: str) -> Any:
        for argument in node.arguments or ():
            if argument.name.value == name:
                return value_from_ast_untyped(argument.value, self.variables)
        return None

    def _field_type(self, parent: Any, node: FieldNode) -> Any:
        fields = getattr(parent, "fields", None) or {}
        definition = fields.get(node.name.value)
        return None if definition is None else get_named_type(definition.type)

    def requested(self) -> int:
        if self.operation.operation == OperationType.MUTATION:
            root = self.schema.mutation_type
            return MUTATION_COST * len(self._fields(root, self.operation.selection_set))
        return self._requested(self.schema.query_type, self.operation.selection_set)

    def _requested(self, parent: Any, selection_set: SelectionSetNode | None) -> int:
        total = 0
        for owner, node in self._fields(parent, selection_set):
            if node.name.value.startswith("__"):
                continue
            named = self._field_type(owner, node)
            if named is None or is_leaf_type(named):
                continue
            if _is_connection(named.name):
                size = self._argument(node, "first") or self._argument(node, "last") or 0
                total += 2 + int(size) * self._node_cost(named, node.selection_set)
            else:
                total += self._list_size(owner, node) * (1 + self._requested(named, node.selection_set))
        return total

    def _list_size(self, owner: Any, node: FieldNode) -> int:
        """How many objects a field may return: ``len(ids)`` for ``nodes(ids:)``, ``first`` for a
        list with a ``first`` argument, else 1."""
        ids = self._argument(node, "ids")
        if isinstance(ids, list):
            return max(len(ids), 1)
        first = self._argument(node, "first")
        return int(first) if isinstance(first, int) and first > 0 else 1

    def _node_cost(self, connection: GraphQLObjectType, selection_set: SelectionSetNode | None) -> int:
        """What one object of a connection costs: its own point plus its selections."""
        node_type = get_named_type(connection.fields["nodes"].type)
        best = 0
        for _, node in self._fields(connection, selection_set):
            if node.name.value == "nodes":
                best = max(best, 1 + self._requested(node_type, node.selection_set))
            elif node.name.value == "edges":
                edge_type = get_named_type(connection.fields["edges"].type)
                for _, inner in self._fields(edge_type, node.selection_set):
                    if inner.name.value == "node":
                        best = max(best, 1 + self._requested(node_type, inner.selection_set))
        return best

    def actual(self, data: Any) -> int:
        if self.operation.operation == OperationType.MUTATION:
            return self.requested()
        return self._actual(self.schema.query_type, self.operation.selection_set, data)

    def _actual(self, parent: Any, selection_set: SelectionSetNode | None, data: Any) -> int:
        if not isinstance(data, dict):
            return 0
        total = 0
        for owner, node in self._fields(parent, selection_set):
            name = node.name.value
            if name.startswith("__"):
                continue
            named = self._field_type(owner, node)
            if named is None or is_leaf_type(named):
                continue
            value = data.get(node.alias.value if node.alias else name)
            if value is None:
                continue
            if _is_connection(named.name):
                total += 2 + self._connection_actual(named, node.selection_set, value)
            elif isinstance(value, list):
                total += sum(1 + self._actual(named, node.selection_set, item) for item in value)
            else:
                total += 1 + self._actual(named, node.selection_set, value)
        return total

    def _connection_actual(self, connection: GraphQLObjectType, selection_set: Any, value: Any) -> int:
        node_type = get_named_type(connection.fields["nodes"].type)
        edge_type = get_named_type(connection.fields["edges"].type)
        per_node: dict[int, int] = {}
        for _, node in self._fields(connection, selection_set):
            key = node.alias.value if node.alias else node.name.value
            items = value.get(key) or [] if isinstance(value, dict) else []
            if node.name.value == "nodes":
                for i, item in enumerate(items):
                    per_node[i] = max(
                        per_node.get(i, 0), 1 + self._actual(node_type, node.selection_set, item)
                    )
            elif node.name.value == "edges":
                for i, edge in enumerate(items):
                    for _, inner in self._fields(edge_type, node.selection_set):
                        if inner.name.value == "node":
                            key2 = inner.alias.value if inner.alias else "node"
                            cost = 1 + self._actual(node_type, inner.selection_set, edge.get(key2))
                            per_node[i] = max(per_node.get(i, 0), cost)
        return sum(per_node.values())


class LeakyBucket:
    """``maximum`` points, refilled continuously at ``restore_rate`` points per second."""

    def __init__(
        self, maximum: float, restore_rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self._clock = clock
        self._available = float(maximum)
        self._at = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._available = min(self.maximum, self._available + (now - self._at) * self.restore_rate)
        self._at = now

    def available(self) -> float:
        with self._lock:
            self._refill()
            return self._available

    def take(self, cost: float) -> bool:
        """Take ``cost`` points if the bucket holds them; False (nothing taken) if not."""
        with self._lock:
            self._refill()
            if cost > self._available:
                return False
            self._available -= cost
            return True

    def refund(self, points: float) -> None:
        with self._lock:
            self._refill()
            self._available = min(self.maximum, self._available + max(points, 0.0))

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": round(self.available(), 1),
            "restoreRate": self.restore_rate,
        }
