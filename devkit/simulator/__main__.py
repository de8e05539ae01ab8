"""Send a simulated store's (or the retail sample's) webhooks to a local endpoint.

    python -m devkit.simulator store  --url http://127.0.0.1:8080/ --secret S [--rate 50] [--days 14]
    python -m devkit.simulator retail --url http://127.0.0.1:8080/ --secret S
    python -m devkit.simulator store --dry-run            # what would be sent, no network

Prints a JSON report; exits 1 when some event was never accepted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import date

from devkit.simulator.events import (
    DEFAULT_API_VERSION,
    DEFAULT_SHOP_DOMAIN,
    StoreSimulator,
    WebhookEvent,
    summarize_events,
)
from devkit.simulator.retail import RETAIL_SHOP_DOMAIN, retail_events, retail_summary
from devkit.simulator.sender import send_webhooks


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.simulator", description="Send simulated Shopify webhooks to a local endpoint."
    )
    sub = parser.add_subparsers(dest="source", required=True)
    store = sub.add_parser("store", help="a seeded synthetic store (orders, refunds, products, inventory)")
    retail = sub.add_parser("retail", help="the UCI Online Retail sample as orders/create")
    for p in (store, retail):
        p.add_argument("--url", help="endpoint to POST to (loopback only)")
        p.add_argument("--secret", help="app client secret (default: first of $SHOPIFY_WEBHOOK_SECRETS)")
        p.add_argument(
            "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
        )
        p.add_argument("--duplicates", type=float, default=0.02, help="share of events delivered twice")
        p.add_argument("--concurrency", type=int, default=4)
        p.add_argument("--timeout", type=float, default=5.0, help="seconds per delivery (Shopify: 5)")
        p.add_argument("--max-events", type=int, default=100_000)
        p.add_argument("--max-seconds", type=float, default=600.0)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--api-version", default=DEFAULT_API_VERSION)
        p.add_argument("--dry-run", action="store_true", help="print an event summary, send nothing")
    store.add_argument("--days", type=int, default=14)
    store.add_argument("--variants", type=int, default=50)
    store.add_argument("--start", type=date.fromisoformat, default=date(2024, 1, 1))
    store.add_argument("--shop", default=DEFAULT_SHOP_DOMAIN)
    retail.add_argument(
        "--csv", default=None, help="path of the retail CSV (default: devkit/data/online_retail_sample.csv)"
    )
    retail.add_argument("--shop", default=RETAIL_SHOP_DOMAIN)
    return parser


def _events(args: argparse.Namespace) -> Iterator[WebhookEvent]:
    if args.source == "store":
        sim = StoreSimulator(
            seed=args.seed,
            n_variants=args.variants,
            start=args.start,
            shop_domain=args.shop,
            api_version=args.api_version,
            days=args.days,
        )
        return sim.events()
    return retail_events(args.csv, shop_domain=args.shop, api_version=args.api_version, seed=args.seed)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    events = itertools.islice(_events(args), args.max_events)
    if args.dry_run:
        summary = summarize_events(events)
        if args.source == "retail":
            summary["retail"] = retail_summary(args.csv).__dict__
        print(json.dumps(summary, indent=2))
        return 0
    secrets = [s.strip() for s in os.environ.get("SHOPIFY_WEBHOOK_SECRETS", "").split(",") if s.strip()]
    secret = args.secret or (secrets[0] if secrets else None)
    if not args.url or not secret:
        print(
            "--url and --secret (or $SHOPIFY_WEBHOOK_SECRETS) are required unless --dry-run", file=sys.stderr
        )
        return 2
    try:
        report = send_webhooks(
            events,
            args.url,
            secret,
            rate_per_s=args.rate,
            duplicate_rate=args.duplicates,
            concurrency=args.concurrency,
            timeout=args.timeout,
            max_events=args.max_events,
            max_seconds=args.max_seconds,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2))
    return 0 if report.accepted == report.sent else 1


if __name__ == "__main__":
    sys.exit(main())
