"""The store commands of ``shopml``: ``connect`` and ``backfill`` (parsers and handlers).

Imported by ``devkit/cli.py`` to build its parser, so this module imports nothing heavy at
the top: the Admin API client and the warehouse load only when a command runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

Add = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


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
    except PermanentError as exc:
        print(f"error: {exc}")
        return 2
    except TransientError as exc:
        print(f"failed: {exc} (retry later)")
        return 1
    return 0


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
