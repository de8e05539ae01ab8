"""``python -m shared.features {apply,export,materialize}`` — the feature store's batch jobs.

* ``apply``: write ``<home>/features/repo/feature_store.yaml`` and register the definitions.
* ``export``: build the feature table from the warehouse for ``--start``..``--end`` and write
  the offline parquet file.
* ``materialize``: build + export + apply + ``materialize(START, END)`` (the nightly job;
  ``--from-offline`` skips the build and materializes the parquet already there).

Imports Feast (5–6 s): batch work only, never a function's request path.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from shared.settings import get_settings


def _day(text: str) -> date:
    return date.fromisoformat(text)


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m shared.features", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["apply", "export", "materialize"])
    parser.add_argument("--home", type=Path, default=None, help="state folder (default: SHOPML_HOME)")
    parser.add_argument("--end", type=_day, default=None, help="last day, inclusive (default: today, UTC)")
    parser.add_argument(
        "--start",
        type=_day,
        default=None,
        help=f"first day (default: end - {settings.training_history_days} days)",
    )
    parser.add_argument(
        "--from-offline", action="store_true", help="materialize: use the exported parquet, do not build"
    )
    args = parser.parse_args(argv)
    home: Path = args.home or settings.home
    end: date = args.end or datetime.now(UTC).date()
    start: date = args.start or end - timedelta(days=settings.training_history_days)
    if start > end:
        parser.error(f"--start {start} is after --end {end}")

    from shared.features import store

    if args.command == "apply":
        print(json.dumps({"views": store.apply(home), "repo": str(store.write_repo(home).repo_dir)}))
        return 0
    if args.command == "materialize" and args.from_offline:
        views = store.apply(home)
        print(json.dumps({"views": views, "materialized": store.materialize(home, start, end)}))
        return 0

    from shared.bootstrap import create_warehouse

    warehouse = create_warehouse(settings)
    if args.command == "export":
        from shared.features.build import build_features

        frame = build_features(warehouse, start, end)
        path = store.export_offline(frame, home)
        print(json.dumps({"rows": len(frame), "offline_path": str(path)}))
        return 0
    summary = store.publish_features(warehouse, home, start, end)
    print(json.dumps(summary))
    print(store.summary_line(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
