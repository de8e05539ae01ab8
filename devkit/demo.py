"""``make demo``: the local stack end to end, printing what happens and writing a report.

Stages grow with each step of the project; each adds its numbers to
``demo-report/report.json`` and a section to ``demo-report/index.html``.

Step 1: start the stack; replay a simulated store and the real retail sample as signed
webhooks (with Shopify-style duplicate deliveries, privacy webhooks and a few bad requests);
show that every accepted event is on Pub/Sub; stop the stack, leaving no process behind.

Step 2: validate_load turns every event into typed warehouse rows (DuckDB) or a quarantine
row with reasons; the demo waits until every event is accounted for, then reports row counts,
latest-state counts, quarantine reasons and schema drift, and reconciles them exactly.

Step 3: back-fills 18 months of the same store's history before the webhook window (as the
reconcile step's bulk operations will), builds the daily demand features with the feature
SQL, publishes them to Feast (offline parquet, online SQLite through the feature server) and
reads a few back; then asks for training the way Cloud Scheduler does, a message on
``training-requests``: ``trigger_training`` starts the trainer as a local process, which
registers a candidate (``model.onnx`` + ``card.json`` under ``.shopml/demo/registry``) and
announces it on ``model-events``. The same request again starts nothing (one run a night).
The simulated store is live now: its webhook window ends yesterday (UTC).

Step 4 (``devkit/demo_serving.py``): ``deploy_model`` puts the first candidate live through
its gates (Firestore live pointer); a training request for the next night registers a second
version that goes live the same way; ``predict`` answers as a storefront calls it (latency
percentiles in the report); and the real 85-day retail sample, imported with
``import-orders`` into a warehouse of its own, trains a model the baseline gate refuses.

Step 5 (``devkit/demo_drift.py``): ``drift_monitor`` checks the storefront's inputs against
the live model's training sample; the online history features are then shifted x4, the next
check alerts the local Slack receiver and asks for a rollback, which puts the first version
back on every ``predict`` instance (``rollback_seconds``); one more check asks for no second
rollback. ``drift_alerts`` and the copied ``demo-report/drift.html`` are in the report.

Step 6 (``devkit/demo_storesync.py``): a second shop on the Shopify stand-in is connected
(webhook subscriptions, ``shopify.app.toml``; a second run changes nothing), back-filled through
bulk operations, then two days of its webhooks arrive with one in twenty lost and ``reconcile``
publishes what is missing (``reconciled_events``); a ``customers/redact`` webhook for one of its
customers goes through ``compliance`` (``redacted_rows``, and no row still names them).
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from devkit.local.processes import processes_with_marker
from devkit.local.slack_receiver import SlackReceiver
from devkit.local.stack import LOCAL_WEBHOOK_SECRET, LocalStack, StackInfo
from shared.settings import REPO_ROOT
from shared.validation import TYPED_TABLES

REPORT_DIR = REPO_ROOT / "demo-report"


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Taps:
    """Pull subscriptions that see every message published on the pipeline's entry topics."""

    def __init__(self, info: StackInfo, topics: tuple[str, ...] = ("shopify-events", "compliance")) -> None:
        from shared.adapters.pubsub import admin_clients

        self.settings = info.settings()
        self.publisher, self.subscriber = admin_clients(self.settings)
        self.paths = {}
        for topic in topics:
            path = self.settings.subscription_path(f"demo-tap-{topic}")
            self.subscriber.create_subscription(name=path, topic=self.settings.topic_path(topic))
            self.paths[topic] = path

    def drain(self, idle_rounds: int = 2) -> dict[str, list[Any]]:
        from shared.adapters.pubsub import drain_subscription

        return {
            topic: drain_subscription(self.subscriber, path, idle_rounds)
            for topic, path in self.paths.items()
        }

    def close(self) -> None:
        self.subscriber.close()
        self.publisher.stop()


def privacy_events(shop_domain: str) -> list[Any]:
    from devkit.simulator.events import EventFactory

    factory = EventFactory(shop_domain, "2025-07", seed=7)
    at = datetime(2024, 2, 1, 12, tzinfo=UTC)
    customer = {"id": 6000000000001, "email": "someone@example.com", "phone": None}
    return [
        factory.make(
            "customers/data_request",
            {
                "shop_id": 1,
                "shop_domain": shop_domain,
                "customer": customer,
                "orders_requested": [],
                "data_request": {"id": 9999},
            },
            at,
        ),
        factory.make(
            "customers/redact",
            {"shop_id": 1, "shop_domain": shop_domain, "customer": customer, "orders_to_redact": []},
            at + timedelta(minutes=1),
        ),
    ]


def bad_deliveries(url: str) -> dict[str, int]:
    """A forged signature and an unsupported topic: both must be refused, nothing published."""
    import requests

    from devkit.simulator.events import EventFactory, headers

    event = EventFactory("demo-store.myshopify.com", "2025-07", seed=3).make(
        "carts/update", {"id": 1}, datetime(2024, 1, 1, tzinfo=UTC)
    )
    forged = headers(event, "not-the-app-secret")
    forged["X-Shopify-Topic"] = "orders/create"
    answers = {
        "forged_signature": requests.post(url, data=event.body, headers=forged, timeout=5).status_code,
        "unsupported_topic": requests.post(
            url, data=event.body, headers=headers(event, LOCAL_WEBHOOK_SECRET), timeout=5
        ).status_code,
    }
    return answers


# The simulated store is live now: its webhook window ends yesterday (UTC), so the demo's
# training night is today and the online features predict reads are fresh.
TODAY = datetime.now(UTC).date()


def webhook_start(quick: bool) -> date:
    """First day of the simulated store's webhook window (it ends yesterday)."""
    days, _ = store_size(quick)
    return TODAY - timedelta(days=days)


def demo_demand() -> Any:
    """The demo store's demand: something a model can learn and the baselines miss (a strong
    weekly cycle, ~1.5 units a day for the median variant, no stock-outs, a flat trend), so the
    gates pass for the right reason. The simulator's default store is much harder: there the
    model beats the 28-day average by about 1% and the gate refuses it."""
    from devkit.simulator.demand import DemandConfig

    return DemandConfig(
        base_rate_median=1.5,
        base_rate_sigma=0.6,
        weekly=(0.55, 0.5, 0.6, 0.8, 1.25, 1.8, 1.5),
        dispersion=None,
        stockouts=False,
        growth_per_year=0.0,
        trend_sd_per_year=0.1,
        store_yearly_amplitude=0.05,
    )


def store_size(quick: bool) -> tuple[int, int]:
    """(days, variants) of the simulated store's webhook window (see ``webhook_start``).

    The back-filled history (``devkit/simulator/history.py``) and the webhook simulator do not
    produce the same demand level: over a 56-day webhook window every forecaster, the
    baselines included, under-forecast its last 28 days by 13-15% (bias -0.13 to -0.15 on
    2 Dec), so the model failed the gate's |bias| bound. A known simulator gap to close; until
    then the full demo's webhook window is 14 days, so its holdout is half history, half
    webhooks, as the quick one's is mostly history."""
    return (7, 20) if quick else (14, 60)


def stage_ingest(info: StackInfo, quick: bool) -> dict[str, Any]:
    from devkit.simulator.events import StoreSimulator
    from devkit.simulator.retail import retail_events
    from devkit.simulator.sender import send_webhooks

    url = info.url("ingest_webhook") + "/"
    taps = Taps(info)
    days, variants = store_size(quick)
    simulator = StoreSimulator(
        seed=42, n_variants=variants, start=webhook_start(quick), days=days, demand_config=demo_demand()
    )
    store = list(simulator.events())
    retail = list(retail_events())
    if quick:
        retail = retail[:100]
    privacy = privacy_events("demo-store.myshopify.com")
    malformed = malformed_events(store[0].shop_domain)
    say(
        f"sending {len(store)} simulated store events ({variants} variants, {days} days), "
        f"{len(retail)} real retail orders, {len(privacy)} privacy webhooks and {len(malformed)} malformed "
        "orders, with 2% duplicate deliveries, as signed webhooks"
    )
    started = time.monotonic()
    report = send_webhooks(
        itertools.chain(store, retail, privacy, malformed),
        url,
        LOCAL_WEBHOOK_SECRET,
        duplicate_rate=0.02,
        concurrency=8,
    )
    send_seconds = time.monotonic() - started
    refused = bad_deliveries(url)
    say(
        f"sent {report.sent} events in {send_seconds:.1f} s ({report.sent / send_seconds:.0f}/s), "
        f"{report.deliveries} deliveries, answers {report.status_counts}; refused: {refused}"
    )
    seen = taps.drain()
    taps.close()
    on_topics = {topic: {m.attributes["webhook_id"] for m in messages} for topic, messages in seen.items()}
    published_ids = set().union(*on_topics.values())
    sent_ids = {e.webhook_id for e in itertools.chain(store, retail, privacy, malformed)}
    lost = sent_ids - published_ids  # the merchant's view: sent and not stored, for whatever reason
    by_topic: dict[str, int] = {}
    for messages in seen.values():
        for m in messages:
            by_topic[m.attributes["shopify_topic"]] = by_topic.get(m.attributes["shopify_topic"], 0) + 1
    say(
        f"on Pub/Sub: {len(seen['shopify-events'])} messages on shopify-events, "
        f"{len(seen['compliance'])} on compliance; {len(published_ids)} distinct events; lost: {len(lost)}"
    )
    return {
        "events_sent": report.sent,
        "events_accepted": report.accepted,
        "events_published": len(published_ids),
        "events_lost": len(lost),
        "deliveries": report.deliveries,
        "duplicate_deliveries": report.duplicates_sent,
        "messages_on_topics": {topic: len(messages) for topic, messages in seen.items()},
        "messages_by_shopify_topic": dict(sorted(by_topic.items())),
        "refused_at_edge": refused,
        "send": report.to_dict(),
        "sources": {
            "simulated_store": len(store),
            "retail_sample": len(retail),
            "privacy": len(privacy),
            "malformed": len(malformed),
        },
        "_store_event_ids": sorted(e.webhook_id for e in itertools.chain(store, retail, malformed)),
    }


def malformed_events(shop_domain: str) -> list[Any]:
    """Events a real store can send and the load must quarantine, not drop."""
    from dataclasses import replace

    from devkit.simulator.events import EventFactory

    factory = EventFactory(shop_domain, "2025-07", seed=21)
    at = datetime(2024, 3, 1, 12, tzinfo=UTC)
    return [
        factory.make("orders/create", {"id": 1, "created_at": "yesterday", "line_items": []}, at),
        replace(factory.make("orders/create", {"id": 2}, at), body=b'{"id": 2, "total_price": '),
    ]


def stage_load(info: StackInfo, sent_ids: set[str], timeout_s: float | None = None) -> dict[str, Any]:
    """Wait until every sent event is in the warehouse (loaded or quarantined); reconcile."""
    from shared.bootstrap import create_warehouse

    warehouse = create_warehouse(info.settings())
    ids = sorted(sent_ids)
    # Locally the Pub/Sub emulator keeps ~2 pushes in flight per subscription (bench/RESULTS.md,
    # Step 2): validate_load loads ~25-70 events/s here, so the full demo's ~13,000 events take
    # minutes. The cloud raises push concurrency and scales validate_load out.
    timeout_s = timeout_s if timeout_s is not None else max(300.0, len(ids) / 12)
    say(f"waiting for validate_load to account for {len(ids)} events in the warehouse")
    started = time.monotonic()
    accounted: dict[str, str] = {}

    def account() -> dict[str, str]:
        rows = warehouse.query(
            "SELECT webhook_id, ANY_VALUE(status) AS status FROM raw_events "
            "WHERE webhook_id IN UNNEST(@ids) GROUP BY webhook_id",
            {"ids": ids},
        )
        return {r["webhook_id"]: r["status"] for r in rows}

    # Polling holds DuckDB's single-process file lock, which validate_load needs for every write:
    # a cheap count every 3 s, the full check only once the count says it can succeed.
    while time.monotonic() - started < timeout_s:
        seen = warehouse.query("SELECT COUNT(DISTINCT webhook_id) AS n FROM raw_events")[0]["n"]
        if seen >= len(ids):
            accounted = account()
            if len(accounted) == len(ids):
                break
        time.sleep(3)
    else:
        accounted = account()
    waited = time.monotonic() - started
    loaded = sorted(i for i, s in accounted.items() if s == "loaded")
    rejected = sorted(i for i, s in accounted.items() if s == "rejected")
    tables = {}
    for table in ("raw_events", *TYPED_TABLES, "rejected_events", "schema_drift"):
        tables[table] = warehouse.query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]  # noqa: S608
    latest = {}
    for view in (
        "orders_latest",
        "order_line_items_latest",
        "products_latest",
        "variants_latest",
        "inventory_levels_latest",
        "customers_latest",
    ):
        latest[view] = warehouse.query(f"SELECT COUNT(*) AS n FROM {view}")[0]["n"]  # noqa: S608
    reasons = warehouse.query(
        "SELECT shopify_topic, reason_summary FROM rejected_events ORDER BY rejected_at LIMIT 10"
    )
    drift = warehouse.query(
        "SELECT shopify_topic, api_version, kind, field_path, events FROM schema_drift_report "
        "ORDER BY events DESC, field_path LIMIT 10"
    )
    typed_ids: set[str] = set()
    for table in ("orders", "refunds", "products", "inventory_levels", "customers"):
        typed_ids |= {r["webhook_id"] for r in warehouse.query(f"SELECT DISTINCT webhook_id FROM {table}")}  # noqa: S608
    reconciled = {
        "events_sent": len(ids),
        "accounted_for": len(accounted),
        "loaded": len(loaded),
        "quarantined": len(rejected),
        "quarantined_but_typed": len(set(rejected) & typed_ids),
        "missing": len(ids) - len(accounted),
    }
    say(
        f"warehouse after {waited:.1f} s: {len(loaded)} loaded, {len(rejected)} quarantined, "
        f"{reconciled['missing']} missing; rows {tables}"
    )
    say(
        f"raw_events holds every delivery ({tables['raw_events']} rows for {len(accounted)} events, "
        f"duplicates included); latest-state views fold duplicates and out-of-order updates: {latest}"
    )
    for row in reasons[:3]:
        say(f"quarantined {row['shopify_topic']}: {row['reason_summary']}")
    return {
        "warehouse": info.settings().warehouse_url,
        "load_wait_seconds": round(waited, 1),
        "reconciliation": reconciled,
        "rows_by_table": tables,
        "latest_rows": latest,
        "quarantine_reasons": reasons,
        "schema_drift_top": drift,
    }


def stage_history(info: StackInfo, quick: bool) -> dict[str, Any]:
    """Back-fill the store's history before the webhook window, straight into the warehouse."""
    from devkit.simulator.history import write_history
    from shared.bootstrap import close_warehouse, create_warehouse

    settings = info.settings()
    days, variants = store_size(quick)
    history_days = settings.training_history_days - days
    first_webhook_day = webhook_start(quick)
    start = first_webhook_day - timedelta(days=history_days + 28)  # lags reach 28 days back
    warehouse = create_warehouse(settings)
    started = time.monotonic()
    # The webhook window's catalogue: the same product, variant and inventory item ids.
    window = (first_webhook_day, first_webhook_day + timedelta(days=days))
    summary = write_history(
        warehouse,
        variants,
        start,
        first_webhook_day,
        seed=42,
        catalogue_window=window,
        demand_config=demo_demand(),
    )
    close_warehouse(warehouse)
    say(
        f"back-filled {history_days + 28} days of history for {variants} variants before the webhook "
        f"window in {time.monotonic() - started:.1f} s: {summary}"
    )
    return {"history": {"start": str(start), "end": str(first_webhook_day), **summary}}


def training_window(settings: Any, quick: bool) -> tuple[date, date, date]:
    """(night, start, end): the night after the last webhook day, and its data window."""
    days, _ = store_size(quick)
    night = webhook_start(quick) + timedelta(days=days)
    end = night - timedelta(days=1)
    return night, end - timedelta(days=settings.training_history_days - 1), end


def stage_features(info: StackInfo, quick: bool) -> dict[str, Any]:
    """Build the feature table with the feature SQL; publish it to Feast; read some back."""
    from shared.bootstrap import close_warehouse, create_warehouse
    from shared.features.store import publish_features

    settings = info.settings()
    _, start, end = training_window(settings, quick)
    warehouse = create_warehouse(settings)
    started = time.monotonic()
    published = publish_features(warehouse, settings.home, start, end)
    close_warehouse(warehouse)
    say(
        f"features {start}..{end} built and published to Feast in {time.monotonic() - started:.1f} s: "
        f"{published['rows']} rows, {published['variants']} variants, views {published['views']}"
    )
    return {
        "features": {"window": [str(start), str(end)], **published, "online": online_read_back(info, quick)}
    }


def online_read_back(info: StackInfo, quick: bool, timeout_s: float = 20) -> dict[str, Any]:
    """Read a few variants from the feature server as the storefront path will: as of the
    demo's night the values are fresh; five days later they are older than the views' TTL, so
    they come back missing although Feast itself still calls them PRESENT."""
    from devkit.simulator.events import DEFAULT_SHOP_DOMAIN
    from shared.bootstrap import close_warehouse, create_warehouse
    from shared.features.online import FeatureServerUnavailable, online_features

    settings = info.settings()
    night, _, _ = training_window(settings, quick)
    warehouse = create_warehouse(settings)
    ids = [
        int(r["id"])
        for r in warehouse.query(
            "SELECT id FROM variants_latest WHERE shop_domain = @shop ORDER BY id LIMIT 3",
            {"shop": DEFAULT_SHOP_DOMAIN},
        )
    ]
    close_warehouse(warehouse)
    client = online_features(settings.feature_server_url, 2000)
    names = ["lag_1", "rmean_7", "price", "inventory_on_hand"]
    deadline = time.monotonic() + timeout_s  # the server picks up the new registry within ~5 s
    while True:
        try:
            raw = client.read(ids, names)
            if all(v.status == "PRESENT" for row in raw.values() for v in row.values()):
                break
        except FeatureServerUnavailable:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the feature server did not serve {ids} within {timeout_s} s")
        time.sleep(0.5)
    as_of_night = client.get(ids, names, now=datetime.combine(night, datetime.min.time(), UTC))
    later = night + timedelta(days=5)
    as_of_later = client.get(ids, names, now=datetime.combine(later, datetime.min.time(), UTC))
    client.close()
    statuses = sorted({v.status for row in raw.values() for v in row.values()})
    say(
        f"online features of variant {ids[0]} as of {night}: {as_of_night[ids[0]]}; as of {later} "
        f"(older than the TTL): {as_of_later[ids[0]]} although Feast reports {statuses}"
    )
    return {
        "variants": ids,
        "as_of_night": {str(k): v for k, v in as_of_night.items()},
        "as_of_5_days_later": {str(k): v for k, v in as_of_later.items()},
        "feast_statuses": statuses,
    }


def stage_train(info: StackInfo, quick: bool, timeout_s: float = 300) -> dict[str, Any]:
    """Ask for training like Cloud Scheduler does; wait for the registered candidate."""
    from shared.adapters.pubsub import admin_clients
    from shared.bootstrap import build_registry

    settings = info.settings()
    night, start, end = training_window(settings, quick)
    taps = Taps(info, topics=("model-events",))
    publisher, _ = admin_clients(settings)
    request = json.dumps({"night": str(night)}).encode()
    say(f"publishing a training request for the night of {night} (data {start}..{end}) on training-requests")
    publisher.publish(settings.topic_path("training-requests"), request).result(timeout=10)
    registry = build_registry(settings)
    started = time.monotonic()
    versions: list[Any] = []
    while time.monotonic() - started < timeout_s and not versions:
        versions = registry.versions(settings.model_name)
        time.sleep(1)
    waited = time.monotonic() - started
    if not versions:
        log = settings.home / "run" / "training"
        raise RuntimeError(f"no model registered after {waited:.0f} s; see the trainer log under {log}")
    say("publishing the same request again: trigger_training must not start a second run tonight")
    publisher.publish(settings.topic_path("training-requests"), request).result(timeout=10)
    time.sleep(3)
    events = [json.loads(m.data) for m in taps.drain().get("model-events", [])]
    taps.close()
    publisher.stop()
    runs = sorted(p.name for p in (settings.home / "training").glob("*.json"))
    card = versions[-1].card
    entries = [
        {
            "version": v.version,
            "aliases": list(v.aliases),
            "uri": v.uri,
            "decision": v.card.get("decision", v.card.get("champion", {}).get("decision")),
            "wape_model": v.card.get("wape_model"),
        }
        for v in versions
    ]
    say(
        f"registered {card['model']} {card['version']} after {waited:.1f} s ({entries[-1]['aliases']}): "
        f"WAPE {card['wape_model']:.3f} vs seasonal naive {card['wape_seasonal_naive']:.3f} and 28-day "
        f"average {card['wape_moving_average_28']:.3f} on {card['holdout_window']}; ONNX parity "
        f"{card['parity']['max_abs_diff']:.1e}; model-events messages: {len(events)}; training runs "
        f"for the night: {len(runs)}"
    )
    return {
        "model_versions": entries,
        "wape_model": card["wape_model"],
        "wape_seasonal_naive": card["wape_seasonal_naive"],
        "wape_moving_average_28": card["wape_moving_average_28"],
        "training": {
            "night": str(night),
            "window": [str(start), str(end)],
            "wait_seconds": round(waited, 1),
            "runs_for_the_night": len(runs),
            "model_events": events,
            "card": {k: card[k] for k in ("rows", "holdout_window", "parity", "champion", "timings")},
        },
    }


def stage_serving(
    info: StackInfo, quick: bool, report: dict[str, Any], slack: SlackReceiver
) -> dict[str, Any]:
    """Step 4: the first model goes live, a second version follows through the gates, the
    storefront calls predict; Step 5: a drift check, an injected shift, the alert and the
    rollback it asks for put the first back; a real sample fails the gate."""
    from devkit import demo_drift, demo_serving
    from devkit.simulator.events import DEFAULT_SHOP_DOMAIN

    first = report["model_versions"][0]["version"]
    night, _, _ = training_window(info.settings(), quick)
    out: dict[str, Any] = {}
    out.update(demo_serving.stage_first_deploy(info, first))
    out.update(demo_serving.stage_second_version(info, night, first))
    variants = report["features"]["online"]["variants"]
    out.update(demo_serving.stage_predict(info, DEFAULT_SHOP_DOMAIN, variants, 100 if quick else 300))
    out.update(demo_drift.stage_drift(info, slack, DEFAULT_SHOP_DOMAIN))
    out.update(demo_serving.stage_gate_rejection(info))
    from shared.bootstrap import build_registry

    settings = info.settings()
    out["model_versions"] = [
        {
            "version": v.version,
            "aliases": list(v.aliases),
            "decision": v.card.get("decision", v.card.get("champion", {}).get("decision")),
            "wape_model": v.card.get("wape_model"),
        }
        for v in build_registry(settings).versions(settings.model_name)
    ]
    return out


def write_report(report: dict[str, Any]) -> Path:
    REPORT_DIR.mkdir(exist_ok=True)
    (REPORT_DIR / "report.json").write_text(json.dumps(report, indent=2, default=str))
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th>"
        f"<td><pre>{html.escape(json.dumps(v, indent=1, default=str))}</pre></td></tr>"
        for k, v in report.items()
    )
    drift_link = ' The latest <a href="drift.html">drift report</a>.' if report.get("drift_report") else ""
    generated = html.escape(report["generated_at"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>shopml demo report</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}th{{text-align:left;vertical-align:top;
padding-right:1rem}}pre{{margin:0}}td,th{{border-bottom:1px solid #ddd;padding:.3rem}}</style></head><body>
<h1>shopml demo</h1><p>Generated {generated}; see <code>report.json</code>.{drift_link}</p>
<table>{rows}</table></body></html>"""
    (REPORT_DIR / "index.html").write_text(page)
    return REPORT_DIR


def run(quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    report: dict[str, Any] = {"generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "quick": quick}
    home = REPO_ROOT / ".shopml" / "demo"
    say(
        "starting the local stack (Pub/Sub emulator, functions under functions-framework, push subscriptions)"
    )
    slack = SlackReceiver().start()  # drift_monitor's alerts land here
    demo_env = {
        "SHOPML_SLACK_WEBHOOK_URL": slack.url,
        "SHOPML_PREDICT_SAMPLE_RATE": "1",  # every answer logged: the drift stage reads them
        # The demo store serves 20-60 variants a day: that many observations a day (the cloud's
        # default, 500, needs a store of that size or a longer window).
        "SHOPML_DRIFT_MIN_CURRENT_ROWS": "15",
    }
    from devkit.demo_storesync import StoreSync, stage_store_sync

    sync = StoreSync(quick)  # Step 6's shop, served by the Shopify stand-in (its address goes to the stack)
    demo_env.update(sync.env())
    stack = LocalStack(home, feature_server=True, predict_instances=2, extra_env=demo_env)
    try:
        stack.down()  # a stack left over from an interrupted demo
    except Exception as exc:
        say(f"could not stop a leftover stack: {exc}")
    if home.exists():  # every demo starts from an empty warehouse and registry
        shutil.rmtree(home)
    info = stack.up()
    try:
        say(f"stack up: {json.dumps(info.functions)}; start-up seconds {info.startup_seconds}")
        report["stack"] = {"functions": sorted(info.functions), "startup_seconds": info.startup_seconds}
        report.update(stage_ingest(info, quick))
        store_ids = set(report.pop("_store_event_ids"))
        report.update(stage_load(info, store_ids))
        report.update(stage_history(info, quick))
        report.update(stage_features(info, quick))
        report.update(stage_train(info, quick))
        report.update(stage_serving(info, quick, report, slack))
        report.update(stage_store_sync(info, sync))
    finally:
        stack.down()
        slack.stop()
        sync.stop()
    left = processes_with_marker(info.stack_id)
    say(f"stack stopped; processes left behind: {len(left)}")
    report["processes_left_behind"] = len(left)
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    out = write_report(report)
    say(f"report written to {out / 'report.json'} and {out / 'index.html'}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.demo")
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 90 s)")
    args = parser.parse_args(argv)
    report = run(args.quick)
    reconciliation = report["reconciliation"]
    ok = (
        report["events_lost"] == 0
        and report["processes_left_behind"] == 0
        and reconciliation["missing"] == 0
        and reconciliation["quarantined_but_typed"] == 0
        and bool(report.get("model_versions"))
        and report["training"]["runs_for_the_night"] == 1
        and len(report.get("model_versions", [])) >= 2
        and report.get("live_version_final") == report["model_versions"][0]["version"]
        and report.get("gate_rejection", {}).get("decision") == "reject"
        and report.get("drift_alerts", 0) >= 1
        and report.get("drift", {}).get("second_rollback_requested") is False
        and report.get("reconciled_events", 0) > 0
        and report.get("store_sync", {}).get("connect", {}).get("second_run_changed") is False
        and report.get("privacy", {}).get("rows_still_naming_customer") == 0
    )
    say("OK: nothing lost" if ok else "PROBLEM: see the report")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
