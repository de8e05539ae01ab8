"""The store commands of ``shopml``: ``connect`` and ``backfill`` (parsers and handlers).

Imported by ``devkit/cli.py`` to build its parser, so this module imports nothing heavy at
the top: the Admin API client and the warehouse load only when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _failed(exc: Exception, again: str) -> int:
    """A store command's failure: exit 1 with ``again`` (how to retry) for a transient error,
    else exit 2 (bad input or refused)."""
    from shared.errors import TransientError

    if isinstance(exc, TransientError):
        print(f"failed: {exc} ({again})")
        return 1
    print(f"error: {exc}")
    return 2


def cmd_connect(args: argparse.Namespace) -> int:
    from devkit.connect import connect
    from shared.adapters.object_stores import create_object_store
    from shared.adapters.shopify_admin import admin_client
    from shared.errors import PermanentError, TransientError
    from shared.settings import get_settings
    from shared.storesync.state import SyncState
    from shared.storesync.subscriptions import Delivery, pubsub_uri

    settings = get_settings()
    try:
        delivery = Delivery(
            "pubsub" if args.pubsub else "https",
            args.ingest_url,
            pubsub_uri(args.project or settings.project, settings.topic_name("shopify-events")),
        )
        admin = admin_client(args.shop, settings)
        state = SyncState(create_object_store(settings.sync_state_url, project=settings.project))
        connect(
            admin,
            delivery,
            settings.store_topics,
            settings.compliance_topics,
            api_version=settings.shopify_api_version,
            app_toml=None if args.no_app_toml else Path(args.app_toml),
            state=state,
            dry_run=args.dry_run,
        )
    except (PermanentError, TransientError) as exc:
        return _failed(exc, "retry later")
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from devkit.backfill import backfill
    from shared import bootstrap
    from shared.adapters.object_stores import create_object_store
    from shared.adapters.shopify_admin import admin_client
    from shared.bootstrap import close_warehouse
    from shared.errors import PermanentError, TransientError
    from shared.storesync.state import SyncState

    settings = bootstrap.settings()
    now = datetime.now(UTC)
    if args.since is not None:
        since = datetime.combine(args.since, datetime.min.time(), tzinfo=UTC)
    else:
        since = now - timedelta(days=args.days or settings.backfill_history_days)
    warehouse = bootstrap.warehouse()
    try:
        if args.direct:
            from devkit.direct_load import DirectLoader

            publisher: object = DirectLoader(
                warehouse, store_pii=settings.store_pii, pii_hash_key=settings.pii_hash_key
            )
        else:
            publisher = bootstrap.publisher()
        report = backfill(
            admin_client(args.shop, settings),
            publisher,  # type: ignore[arg-type]
            SyncState(create_object_store(settings.sync_state_url, project=settings.project)),
            since=since,
            api_version=settings.shopify_api_version,
            warehouse=warehouse,
            restart=args.restart,
            batch_size=args.batch,
            concurrency=1 if args.direct else 8,  # the in-process loader plans under one lock
        )
    except (PermanentError, TransientError) as exc:
        return _failed(exc, "run the same command again: it resumes")
    finally:
        close_warehouse(warehouse)
    if not report.already_complete:
        print(f"{args.shop}: backfill from {report.since} done in {report.seconds:.1f} s, "
              f"{report.published:,} events published")  # fmt: skip
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from shared import bootstrap
    from shared.adapters.object_stores import create_object_store
    from shared.adapters.shopify_admin import admin_client
    from shared.bootstrap import close_warehouse
    from shared.errors import PermanentError, TransientError
    from shared.storesync.reconcile import ReconcileOutcome, reconcile_shops, shops_to_reconcile
    from shared.storesync.state import SyncState

    settings = bootstrap.settings()
    warehouse = bootstrap.warehouse()
    since = None
    if args.since is not None:
        since = datetime.combine(args.since, datetime.min.time(), tzinfo=UTC)

    def say(outcome: ReconcileOutcome) -> None:
        if outcome.status != "done":
            print(f"{outcome.shop}: skipped ({outcome.status})")
            return
        print(
            f"{outcome.shop}: {outcome.window_start} .. {outcome.window_end}: checked {outcome.checked}, "
            f"published {outcome.published or 'nothing'}, {outcome.skipped} already loaded"
        )

    try:
        publisher: object
        if args.direct:
            from devkit.direct_load import DirectLoader

            publisher = DirectLoader(
                warehouse, store_pii=settings.store_pii, pii_hash_key=settings.pii_hash_key
            )
        else:
            publisher = bootstrap.publisher()
        state = SyncState(create_object_store(settings.sync_state_url, project=settings.project))
        shops = shops_to_reconcile(state, args.shop)
        if not shops:
            print("no connected shop (run shopml connect first, or give --shop)")
            return 2
        reconcile_shops(
            shops,
            lambda shop: admin_client(shop, settings),
            warehouse,
            publisher,
            state,
            api_version=settings.shopify_api_version,
            overlap=timedelta(minutes=settings.reconcile_overlap_minutes),
            now=datetime.now(UTC),
            since=since,
            log=say,
        )
    except (PermanentError, TransientError) as exc:
        return _failed(exc, "run again: passes that finished moved their watermark")
    finally:
        close_warehouse(warehouse)
    return 0


def _day(text: str) -> object:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def add_store_commands(add: Add) -> None:
    connect = add(
        "connect",
        cmd_connect,
        "subscribe a shop to the topics shopml needs (webhookSubscriptionCreate, to ingest_webhook over "
        "HTTPS or to Pub/Sub) and write the [webhooks] section of shopify.app.toml; idempotent: a second "
        "run changes nothing",
    )
    connect.add_argument("--shop", required=True, help="the shop, e.g. my-store.myshopify.com")
    connect.add_argument(
        "--ingest-url", required=True, help="the HTTPS address of ingest_webhook (Terraform output)"
    )
    connect.add_argument(
        "--pubsub",
        action="store_true",
        help="store topics go to pubsub://PROJECT:shopify-events (Shopify publishes; needs the "
        "delivery grant, Terraform variable shopify_pubsub_delivery); privacy topics stay on HTTPS",
    )
    connect.add_argument(
        "--project", default=None, help="GCP project of the Pub/Sub topic (default: settings)"
    )
    connect.add_argument(
        "--app-toml", default="shopify.app.toml", help="the app configuration file to update"
    )
    connect.add_argument("--no-app-toml", action="store_true", help="leave shopify.app.toml alone")
    connect.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")

    back = add(
        "backfill",
        cmd_backfill,
        "load a shop's history (orders and refunds of the window, products, variants, inventory) "
        "through Admin API bulk operations onto shopify-events (source=backfill); resumable: after a "
        "crash the same command continues where it stopped; a re-run adds nothing",
    )
    back.add_argument("--shop", required=True, help="the shop, e.g. my-store.myshopify.com")
    window = back.add_mutually_exclusive_group()
    window.add_argument(
        "--days", type=int, default=None, help="history in days (default SHOPML_BACKFILL_HISTORY_DAYS)"
    )
    window.add_argument("--since", type=_day, default=None, help="first day of the window (YYYY-MM-DD)")
    back.add_argument("--restart", action="store_true", help="start a new backfill even if one finished")
    back.add_argument("--batch", type=int, default=500, help="events published between progress records")
    back.add_argument(
        "--direct",
        action="store_true",
        help="load in this process (same validation and load) instead of publishing to Pub/Sub",
    )

    rec = add(
        "reconcile",
        cmd_reconcile,
        "one reconcile pass now (what the reconcile function does every 4 hours): changes since the "
        "watermark compared with the warehouse, only missing or newer versions published (source=reconcile)",
    )
    rec.add_argument("--shop", default=None, help="one shop (default: every shop shopml connect set up)")
    rec.add_argument(
        "--since", type=_day, default=None, help="re-check from this day instead of the watermark"
    )
    rec.add_argument(
        "--direct", action="store_true", help="load in this process instead of publishing to Pub/Sub"
    )
