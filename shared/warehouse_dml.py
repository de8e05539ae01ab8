"""Deleting and updating warehouse rows by predicate: the statements both adapters run.

Rows are appended by ``insert_rows`` / ``write_batch``; privacy requests (``shared.privacy``)
are the one use case that must take rows out again or overwrite personal columns. The
statements are written once in BigQuery's dialect (the DuckDB adapter translates them, as it
does every query), the table and column names checked against the table files, and every value
bound as a parameter, never interpolated. A ``None`` value is written as the ``NULL`` literal:
an untyped NULL parameter is a STRING on BigQuery, which cannot be assigned to an INT64 column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shared.errors import PermanentError
from shared.warehouse_schema import TableSpec

SET_PREFIX = "set_"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_where(where: str) -> str:
    if not where.strip():
        raise PermanentError("a DELETE or UPDATE needs a WHERE predicate (use TRUE to mean every row)")
    if ";" in where:
        raise PermanentError("the WHERE predicate must be one expression, without ';'")
    return where


def delete_statement(spec: TableSpec, where: str) -> str:
    """``DELETE FROM table WHERE (where)``."""
    return f"DELETE FROM `{spec.name}` WHERE ({_check_where(where)})"  # noqa: S608 - name from the table file


def update_statement(
    spec: TableSpec, values: Mapping[str, Any], where: str, params: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """``UPDATE table SET col = @set_col, ... WHERE (where)`` and its parameters.

    ``values`` maps column names (top-level, not REPEATED or RECORD) to new values; ``None``
    sets NULL. Raises ``PermanentError`` naming an unknown column, a nested one, a REQUIRED
    column set to NULL, or a parameter name that collides with the generated ones.
    """
    if not values:
        raise PermanentError(f"UPDATE of {spec.name}: no column to set")
    bound: dict[str, Any] = dict(params or {})
    assignments = []
    for name, value in values.items():
        column = spec.by_name.get(name)
        if column is None or not _NAME.match(name):
            raise PermanentError(f"UPDATE of {spec.name}: no column {name!r} in its table file")
        if column.repeated or column.type == "RECORD":
            raise PermanentError(
                f"column {name!r} of {spec.name} is nested: an UPDATE sets top-level columns only"
            )
        if value is None:
            if column.required:
                raise PermanentError(f"UPDATE of {spec.name}: column {name!r} is REQUIRED, cannot be NULL")
            assignments.append(f"`{name}` = NULL")
            continue
        key = f"{SET_PREFIX}{name}"
        if key in bound:
            raise PermanentError(f"UPDATE of {spec.name}: parameter @{key} is reserved for the new value")
        bound[key] = value
        assignments.append(f"`{name}` = @{key}")
    sql = f"UPDATE `{spec.name}` SET {', '.join(assignments)} WHERE ({_check_where(where)})"  # noqa: S608
    return sql, bound
