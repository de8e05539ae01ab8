"""Build the daily demand feature table from the warehouse (batch: training sets, backfills).

``build_features(warehouse, start, end)`` runs ``shared/sql/features/variant_daily_features.sql``
(BigQuery SQL; DuckDB translates it) for ``start .. end`` (both inclusive) and returns a pandas
DataFrame with exactly ``COLUMNS``, in order: ``shop_domain`` and ``product_type`` as strings
(object, NULL → None), ``variant_id`` / ``product_id`` int64, ``date`` datetime64[ns] (midnight,
naive: a UTC day), every other column float64 (NaN where the SQL says NULL).

The fast path is the adapter's optional ``query_frame`` (``shared.ports.FrameWarehouse``:
DuckDB and BigQuery have it); any other ``Warehouse`` goes through ``query`` (list of dicts).
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.features import COLUMNS

if TYPE_CHECKING:
    import pandas as pd

    from shared.ports import Warehouse

FEATURE_SQL = Path(__file__).resolve().parent.parent / "sql" / "features" / "variant_daily_features.sql"
ID_COLUMNS: tuple[str, ...] = ("variant_id", "product_id")
STRING_COLUMNS: tuple[str, ...] = ("shop_domain", "product_type")
FLOAT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in (*ID_COLUMNS, *STRING_COLUMNS, "date"))


@functools.cache
def feature_sql() -> str:
    """The feature query (BigQuery dialect, parameters ``@start_date`` and ``@end_date``)."""
    return FEATURE_SQL.read_text(encoding="utf-8").strip().rstrip(";")


def build_features(warehouse: Warehouse, start: date, end: date, *, sql: str | None = None) -> pd.DataFrame:
    """One row per (shop_domain, variant_id, date) for ``start .. end`` (inclusive), ``COLUMNS``
    in order, sorted by shop, variant and date. See ``shared/features/__init__.py`` for what
    each column means and the SQL file's header for the point-in-time rules. ``sql`` replaces
    the query (tests use it to show that the leakage test catches a leaky one)."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    params = {"start_date": start, "end_date": end}
    text = sql if sql is not None else feature_sql()
    query_frame = getattr(warehouse, "query_frame", None)
    if callable(query_frame):
        frame = query_frame(text, params)
    else:
        import pandas as pd

        frame = pd.DataFrame(warehouse.query(text, params), columns=list(COLUMNS))
    return conform_features(frame)


def conform_features(frame: Any) -> pd.DataFrame:
    """``frame`` with exactly ``COLUMNS``, in order, and the dtypes the module docstring names."""
    import numpy as np
    import pandas as pd

    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"the feature query returned no column(s) {missing}")
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name in COLUMNS:
        column = frame[name].reset_index(drop=True)
        if name in ID_COLUMNS:
            out[name] = column.astype(np.int64)
        elif name in STRING_COLUMNS:
            out[name] = column.astype(object).where(column.notna(), None)
        elif name == "date":
            out[name] = pd.to_datetime(column).dt.tz_localize(None).astype("datetime64[ns]")
        else:
            out[name] = pd.to_numeric(column, errors="raise").astype(np.float64)
    return out
