"""Order import throughput: a UCI Online Retail file into a fresh DuckDB file, as the CLI runs it.

``python -m devkit.importer FILE --json`` runs in a child process (so its peak RSS is the
import's own) against a new DuckDB file (``SHOPML_WAREHOUSE``); the same file is then
imported a second time to check that nothing is added. Reported: lines per wall-clock second
and per CPU-second of the child (user + system: what the work costs, less sensitive to other
processes on a shared machine), peak RSS, the report's counts and the table row counts after
each import. Full run: the 9-month file (320,705 lines); ``--quick``: the 5,000-line sample.
Target (issue 3b): >= 10,000 lines/s on 2 cores (the full year, 541,909 lines, under 60 s).

``python -m bench --only import`` or ``python bench/import_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a script too
    sys.path.insert(0, str(ROOT))

from devkit import RETAIL_9_MONTHS_CSV, RETAIL_SAMPLE_CSV  # noqa: E402

TARGET = 10_000.0
TABLES = ("raw_events", "orders", "order_line_items", "refunds", "refund_line_items", "rejected_events",
          "schema_drift")  # fmt: skip


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _import(path: Path, url: str) -> dict[str, Any]:
    env = {**os.environ, "SHOPML_WAREHOUSE": url, "PYTHONPATH": str(ROOT)}
    cpu = _child_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "devkit.importer", str(path), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = _child_cpu() - cpu
    lines = report["file_lines"]
    return {
        "report": report,
        "process_seconds": round(wall, 2),
        "process_cpu_seconds": round(cpu, 2),
        "lines_per_s": round(lines / report["seconds"]),
        "lines_per_cpu_s": round(lines / cpu) if cpu else None,
        "peak_rss_mb": report["peak_rss_mb"],
    }


def _counts(url: str) -> dict[str, int]:
    from shared.bootstrap import close_warehouse, create_warehouse
    from shared.settings import Settings

    warehouse = create_warehouse(Settings(warehouse_url=url))
    try:
        sql = "SELECT COUNT(*) AS n FROM {}"  # table names from the constant above
        return {t: int(warehouse.query(sql.format(t))[0]["n"]) for t in TABLES}
    finally:
        close_warehouse(warehouse)


def run(quick: bool = False) -> dict[str, Any]:
    path = RETAIL_SAMPLE_CSV if quick else RETAIL_9_MONTHS_CSV
    with tempfile.TemporaryDirectory(prefix="shopml-import-bench-") as tmp:
        url = f"duckdb:///{Path(tmp) / 'warehouse.duckdb'}"
        first = _import(path, url)
        after_first = _counts(url)
        second = _import(path, url)
        after_second = _counts(url)
    return {
        "file": str(path.relative_to(ROOT)),
        "cores": os.cpu_count(),
        "load_average_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "first": first,
        "second": second,
        "tables_after_first": after_first,
        "tables_after_second": after_second,
        "target_lines_per_s": TARGET,
    }


def report(results: dict[str, Any]) -> str:
    first, second = results["first"], results["second"]
    r = first["report"]
    same = results["tables_after_first"] == results["tables_after_second"]
    out = [
        f"{results['file']}: {r['file_lines']:,} lines → {r['orders']:,} orders, {r['lines']:,} lines, "
        f"{r['refunds']:,} refunds, {r['refunds_without_order']:,} without order, "
        f"{r['stock_adjustments']:,} stock adjustments, {r['rejected_rows']:,} rejected",
        f"first import: {r['seconds']:.1f} s in the importer ({first['process_seconds']:.1f} s process), "
        f"{first['lines_per_s']:,} lines/s wall, {first['process_cpu_seconds']:.1f} CPU-s "
        f"({first['lines_per_cpu_s']:,} lines per CPU-second), "
        f"peak RSS {first['peak_rss_mb']:,.0f} MB (target >= {results['target_lines_per_s']:,.0f} lines/s)",
        f"second import: {second['report']['seconds']:.1f} s in the importer "
        f"({second['process_seconds']:.1f} s process), {second['lines_per_s']:,} lines/s wall, "
        f"{second['process_cpu_seconds']:.1f} CPU-s ({second['lines_per_cpu_s']:,} lines per CPU-second), "
        f"peak RSS {second['peak_rss_mb']:,.0f} MB; "
        f"tables {'unchanged' if same else 'CHANGED'}: {results['tables_after_second']}",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python bench/import_bench.py")
    parser.add_argument("--quick", action="store_true", help="the 5,000-line sample instead of 9 months")
    args = parser.parse_args()
    results = run(quick=args.quick)
    print(json.dumps(results, indent=2, default=str))
    print(report(results))


if __name__ == "__main__":
    main()
