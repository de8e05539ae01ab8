"""``python -m devkit.importer FILE [--shop D] [--format auto|uci|shopify] [--json]``.

Imports into the warehouse of ``SHOPML_WAREHOUSE`` (default: the local DuckDB file) and
prints the report. ``shopml import-orders`` is the same with a progress bar.
Exit codes: 0 imported (rejected rows are in the report, not errors), 1 transient failure
(retry: importing again adds nothing twice), 2 not an importable file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devkit.importer.run import DEFAULT_BATCH_LINES, import_orders
from devkit.importer.source import FORMATS
from shared.errors import PermanentError, TransientError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.importer", description=__doc__.split("\n")[0])
    parser.add_argument(
        "file", type=Path, help="UCI Online Retail or Shopify order export CSV (.csv or .csv.gz)"
    )
    parser.add_argument("--shop", default=None, help="shop domain (default per format)")
    parser.add_argument("--format", choices=FORMATS, default="auto")
    parser.add_argument("--batch-lines", type=int, default=DEFAULT_BATCH_LINES)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line instead")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return 2
    from shared.bootstrap import close_warehouse, create_warehouse
    from shared.settings import get_settings

    settings = get_settings()
    warehouse = create_warehouse(settings)
    try:
        report = import_orders(
            args.file,
            warehouse=warehouse,
            shop_domain=args.shop,
            fmt=args.format,
            batch_lines=args.batch_lines,
            settings=settings,
        )
    except PermanentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TransientError as exc:
        print(f"error, worth retrying: {exc}", file=sys.stderr)
        return 1
    finally:
        close_warehouse(warehouse)
    print(json.dumps(report.as_dict(), default=str) if args.json else report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
