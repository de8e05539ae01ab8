"""``shopml drift --reference R --current C [--out DIR]``: the drift check on any two datasets.

Parquet (``.parquet``/``.pq``) or CSV (``.csv``, ``.csv.gz``) files with the same columns.
Numeric columns (numbers in both files, booleans excluded) get KS, PSI and the mean shift;
every other column is compared as categories (chi-square, L-infinity, PSI). The thresholds are
the settings' (``SHOPML_DRIFT_*``), the code ``shared.monitoring.drift`` — the same that
``drift_monitor`` runs. Writes ``DIR/drift.json`` and ``DIR/drift.html`` (default DIR: the
current directory).

Exit 0: nothing drifted; 1: at least one column drifted; 2: bad input (a missing or unreadable
file, columns that differ).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    pass


def read_table(path: Path) -> Any:
    """A pandas DataFrame from a parquet or CSV file."""
    import pandas as pd

    if not path.is_file():
        raise BadInput(f"{path} is not a file")
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        return pd.read_csv(path, low_memory=False)
    except (ValueError, OSError, ImportError, pd.errors.ParserError) as exc:
        raise BadInput(f"{path} cannot be read as {'parquet' if 'parq' in name else 'CSV'}: {exc}") from exc


def _is_numeric(series: Any) -> bool:
    from pandas.api import types

    return bool(types.is_numeric_dtype(series) and not types.is_bool_dtype(series))


def columns_of(reference: Any, current: Any) -> tuple[list[str], list[str]]:
    """(all columns in the reference's order, the categorical ones); BadInput if they differ."""
    ref_columns, cur_columns = [str(c) for c in reference.columns], [str(c) for c in current.columns]
    if set(ref_columns) != set(cur_columns) or len(ref_columns) != len(cur_columns):
        only_ref = sorted(set(ref_columns) - set(cur_columns))
        only_cur = sorted(set(cur_columns) - set(ref_columns))
        raise BadInput(
            f"the files' columns differ: only in the reference {only_ref}, only in the current {only_cur}"
        )
    if not ref_columns:
        raise BadInput("the files have no columns")
    categorical = [
        name for name in ref_columns if not (_is_numeric(reference[name]) and _is_numeric(current[name]))
    ]
    return ref_columns, categorical


def _column(frame: Any, name: str, categorical: bool) -> Any:
    series = frame[name]
    if categorical:
        return series.astype(object).where(series.notna(), None).to_numpy()
    return series.to_numpy(dtype="float64", na_value=float("nan"))


def table(report: Any) -> str:
    """The verdicts as a plain-text table."""
    header = ("feature", "kind", "verdict", "PSI", "KS D / L-inf", "p (corr.)")
    lines = ["{:<28} {:<11} {:<12} {:>8} {:>12} {:>10}".format(*header)]
    for name, entry in report.features.items():
        distance = entry.ks_statistic if entry.kind == "numeric" else entry.linf
        psi = "-" if entry.psi != entry.psi else f"{entry.psi:.4f}"
        dist = "-" if distance is None else f"{distance:.4f}"
        lines.append(
            f"{name[:28]:<28} {entry.kind:<11} {entry.status:<12} {psi:>8} {dist:>12} "
            f"{entry.pvalue_adjusted:>10.3g}"
        )
        for reason in entry.reasons if entry.status != "ok" else ():
            lines.append(f"{'':<30}{reason}")
    return "\n".join(lines)


def run_drift(reference: str | Path, current: str | Path, out: str | Path | None = None) -> int:
    from shared.monitoring.drift import DriftThresholds, compare
    from shared.monitoring.report import render
    from shared.settings import get_settings

    try:
        ref_frame = read_table(Path(reference))
        cur_frame = read_table(Path(current))
        names, categorical = columns_of(ref_frame, cur_frame)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    thresholds = DriftThresholds.from_settings(get_settings())
    report = compare(
        {name: _column(ref_frame, name, name in categorical) for name in names},
        {name: _column(cur_frame, name, name in categorical) for name in names},
        thresholds,
        categorical=categorical,
    )
    folder = Path(out) if out is not None else Path.cwd()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "drift.json").write_text(json.dumps(report.to_json(), indent=2, allow_nan=False) + "\n")
    context = {
        "reference": f"{reference} ({len(ref_frame)} rows)",
        "current": f"{current} ({len(cur_frame)} rows)",
    }
    (folder / "drift.html").write_text(render(report, "Drift report", context), encoding="utf-8")
    print(table(report))
    drifted = report.drifted
    print(
        f"\n{len(drifted)} of {len(names)} columns drifted"
        + (f": {', '.join(drifted)}" if drifted else "")
        + f"\nwrote {folder / 'drift.json'} and {folder / 'drift.html'}"
    )
    return EXIT_DRIFT if drifted else EXIT_OK
