"""SQL, written once in BigQuery's dialect: translated for DuckDB, qualified for BigQuery.

``bigquery_to_duckdb()`` translates a statement with SQLGlot (``@name`` parameters become
DuckDB's ``$name``; ``NUMERIC`` becomes ``DECIMAL(38, 9)``); ``qualify_for_bigquery()``
qualifies bare table names for BigQuery views; ``views_in_dependency_order()`` orders the view
files so that each comes after the views it reads. SQLGlot is imported on first use only.
"""

from __future__ import annotations

import functools
from typing import Any

from shared.errors import ConfigurationError, PermanentError
from shared.warehouse_schema import NUMERIC_PRECISION, NUMERIC_SCALE, ViewSpec, WarehouseSchema


def _parse_one(sql: str) -> Any:
    import sqlglot
    from sqlglot.errors import ParseError

    try:
        statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    except ParseError as exc:
        raise PermanentError(f"SQL does not parse as BigQuery SQL: {exc}") from None
    if len(statements) != 1:
        raise PermanentError(f"expected exactly one SQL statement, got {len(statements)}")
    return statements[0]


def _cte_names(tree: Any) -> set[str]:
    from sqlglot import exp

    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


@functools.lru_cache(maxsize=1024)
def bigquery_to_duckdb(sql: str) -> str:
    """Translate one BigQuery-dialect statement to DuckDB's.

    Beyond SQLGlot's translation: ``@name`` → ``$name`` (bind with a dict); ``NUMERIC`` /
    ``BIGNUMERIC`` without precision → ``DECIMAL(38, 9)`` (DuckDB's bare DECIMAL is (18, 3));
    ``project.dataset.table`` → ``table`` (a DuckDB file is one dataset).
    """
    from sqlglot import exp

    tree = _parse_one(sql)
    numeric = exp.DataType.build(f"DECIMAL({NUMERIC_PRECISION}, {NUMERIC_SCALE})")

    def rewrite(node: Any) -> Any:
        if isinstance(node, exp.DataType) and node.this in (
            exp.DataType.Type.DECIMAL,
            exp.DataType.Type.BIGDECIMAL,
        ):
            if not node.expressions:
                return numeric.copy()
            if node.this == exp.DataType.Type.BIGDECIMAL:
                return numeric.copy()
        if isinstance(node, exp.Table) and (node.args.get("db") or node.args.get("catalog")):
            node = node.copy()
            node.set("db", None)
            node.set("catalog", None)
            return node
        return node

    tree = tree.transform(rewrite)
    return str(tree.sql(dialect="duckdb"))


def qualify_for_bigquery(sql: str, project: str, dataset: str) -> str:
    """Qualify every bare table name (not CTE names) as ```project`.`dataset`.`table```.

    BigQuery views must name their tables fully; the files use bare names so that the same text
    serves DuckDB and any dataset.
    """
    from sqlglot import exp

    tree = _parse_one(sql)
    ctes = _cte_names(tree)
    for table in tree.find_all(exp.Table):
        if not table.name or table.args.get("db") or table.name.lower() in ctes:
            continue
        if isinstance(table.this, exp.Identifier):
            table.set("db", exp.to_identifier(dataset, quoted=True))
            table.set("catalog", exp.to_identifier(project, quoted=True))
    return str(tree.sql(dialect="bigquery"))


def referenced_tables(sql: str) -> set[str]:
    """Bare names of the tables and views a statement reads (CTEs excluded)."""
    from sqlglot import exp

    tree = _parse_one(sql)
    ctes = _cte_names(tree)
    return {t.name for t in tree.find_all(exp.Table) if t.name and t.name.lower() not in ctes}


def views_in_dependency_order(schema: WarehouseSchema) -> list[ViewSpec]:
    """Views ordered so that a view comes after the views it reads (cycles → ConfigurationError)."""
    pending = dict(schema.views)
    deps = {name: referenced_tables(v.sql) & set(pending) - {name} for name, v in pending.items()}
    ordered: list[ViewSpec] = []
    while pending:
        ready = sorted(name for name in pending if not deps[name] & set(pending))
        if not ready:
            raise ConfigurationError(f"views depend on each other in a cycle: {sorted(pending)}")
        for name in ready:
            ordered.append(pending.pop(name))
    return ordered
