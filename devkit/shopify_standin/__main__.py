"""``python -m devkit.shopify_standin``: serve a simulated store's Admin API until interrupted.

    python -m devkit.shopify_standin --port 8765 --variants 50 --start 2024-11-01 --days 30 \
        --token shpat_local --shop shopml-demo.myshopify.com

Prints one JSON line with the URL, shop and token, then serves (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import date

from devkit.shopify_standin.server import DEFAULT_SCOPES, StandIn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.shopify_standin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--shop", default="shopml-demo.myshopify.com")
    parser.add_argument("--token", default="shpat_standin_local")
    parser.add_argument(
        "--scopes", default=",".join(sorted(DEFAULT_SCOPES)), help="comma-separated access scopes"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", type=int, default=50)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2024, 11, 1))
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--bucket", type=float, default=2000.0, help="maximumAvailable points")
    parser.add_argument("--restore-rate", type=float, default=100.0, help="points per second")
    args = parser.parse_args(argv)

    from devkit.simulator import StoreSimulator

    standin = StandIn(maximum_available=args.bucket, restore_rate=args.restore_rate)
    standin.add_token(args.token, args.shop, [s for s in args.scopes.split(",") if s])
    sim = StoreSimulator(args.seed, args.variants, args.start, shop_domain=args.shop, days=args.days)
    events = standin.state.apply_all(sim.events())
    standin.start(args.host, args.port)
    print(
        json.dumps({"url": standin.url, "shop": args.shop, "token": args.token, "events": events}), flush=True
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
        return 130


if __name__ == "__main__":
    sys.exit(main())
