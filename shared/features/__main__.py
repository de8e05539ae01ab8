"""``python -m shared.features {apply,export,materialize}`` — the feature store's batch jobs.

Local mode (``SHOPML_FEAST_REPO`` unset, the default):

* ``apply``: write ``<home>/features/repo/feature_store.yaml`` and register the definitions.
* ``export``: build the feature table from the warehouse for ``--start``..``--end`` and write
  the offline parquet file.
* ``materialize``: build + export + apply + ``materialize(START, END)`` (the nightly job;
  ``--from-offline`` skips the build and materializes the parquet already there).

Cloud mode (``SHOPML_FEAST_REPO=<dir with feature_store.yaml>``; the feature server image's
entrypoint sets it to the cloud config it writes, so the nightly Cloud Run Job runs this mode):
nothing is written under the home; the offline source is the feature SQL as a BigQuery query over
the warehouse's views (``store.cloud_source_query``).

* ``apply``: register the definitions over that query source.
* ``materialize``: apply, then ``materialize(START, END)``: Feast runs the query in BigQuery and
  writes each variant's latest row to the online store. Default window: ``--end`` today (UTC; the
  row of day D holds only data stamped before 00:00 of D, i.e. up to yesterday) back over the
  longest view TTL (``store.cloud_window``): an older row would be served as stale anyway.
* ``export`` and ``--from-offline`` are local only (there is no parquet file in the cloud).

Imports Feast (5–6 s): batch work only, never a function's request path.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from shared.settings import Settings, get_settings


def _day(text: str) -> date:
    return date.fromisoformat(text)


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    parser = argparse.ArgumentParser(prog="python -m shared.features", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["apply", "export", "materialize"])
    parser.add_argument("--home", type=Path, default=None, help="state folder (default: SHOPML_HOME)")
    parser.add_argument("--end", type=_day, default=None, help="last day, inclusive (default: today, UTC)")
    parser.add_argument(
        "--start",
        type=_day,
        default=None,
        help=f"first day (default: end - {settings.training_history_days} days; "
        "with SHOPML_FEAST_REPO: end - the longest view TTL)",
    )
    parser.add_argument(
        "--from-offline", action="store_true", help="materialize: use the exported parquet, do not build"
    )
    args = parser.parse_args(argv)
    end: date = args.end or datetime.now(UTC).date()
    if settings.feast_repo is not None:
        return _cloud(parser, args, settings.feast_repo, end)
    home: Path = args.home or settings.home
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


def _cloud(parser: argparse.ArgumentParser, args: argparse.Namespace, repo_dir: Path, end: date) -> int:
    """Cloud mode: the repo at ``SHOPML_FEAST_REPO``, the query source over BigQuery."""
    if args.command == "export" or args.from_offline or args.home is not None:
        parser.error(
            "export, --from-offline and --home are local only; SHOPML_FEAST_REPO is set (cloud mode)"
        )
    from shared.features import store

    start: date = args.start or store.cloud_window(end)[0]
    if start > end:
        parser.error(f"--start {start} is after --end {end}")
    feature_store = store.cloud_feature_store(repo_dir)
    if args.command == "apply":
        registered = store.apply_cloud(feature_store, start, end, created=datetime.now(UTC))
        print(json.dumps({"mode": "cloud", "repo": str(repo_dir), **registered}))
        return 0
    summary = store.publish_cloud(repo_dir, start, end, store=feature_store)
    print(json.dumps(summary))
    window = summary["materialized"]
    print(
        f"cloud: views {summary['views']} over {summary['source']['warehouse']} days {start}..{end}; "
        f"materialized {window['start']} .. {window['end']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
