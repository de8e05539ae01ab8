"""The demo's monitoring stage (Step 5): a drift check of the live model, an injected shift of
the storefront's inputs, the alert, and the rollback it asks for.

* the storefront calls ``predict`` for every variant of the shop (sampled answers, with their
  input vectors, reach ``predictions``); a message on ``drift-checks`` (what Cloud Scheduler
  sends hourly) makes ``drift_monitor`` compare them with the live model's training sample;
* the world moves: sales and stock jump, the online history features (lags, rolling means,
  sale days) and the stock on hand of every variant are multiplied by 4 and materialized
  again, and the storefront calls again;
* the next check finds severe drift on the features the model leans on, posts an alert to the
  local Slack receiver and publishes a rollback request; ``rollback`` flips the live pointer,
  and the time from the check request until every ``predict`` instance serves the previous
  version is ``rollback_seconds``;
* one more check asks for no second rollback of the same version.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devkit.demo import REPORT_DIR, say
from devkit.demo_serving import _call, _pointer, _predict_keys, _predict_urls, _query, _wait_for
from devkit.local.slack_receiver import SlackReceiver
from devkit.local.stack import StackInfo

SHIFT = 4.0  # the factor of the injected shift
SHIFTED_STATE = ("inventory_on_hand",)  # with every history feature
BATCH = 10  # variants per predict call (the request path's feature budget is tight)


def _variants(info: StackInfo, shop: str) -> list[int]:
    rows = _query(
        info, "SELECT DISTINCT id FROM variants_latest WHERE shop_domain = @shop ORDER BY id", {"shop": shop}
    )
    return [int(r["id"]) for r in rows]


def _observations(info: StackInfo, version: str) -> int:
    """Distinct inputs of a (variant, day) among ``version``'s logged model answers: what a
    drift check counts (``shared.monitoring.monitor.serving_columns``)."""
    from shared.monitoring.monitor import serving_columns

    rows = _query(
        info,
        "SELECT variant_id, first_day, features FROM predictions "
        "WHERE model_version = @v AND fallback = FALSE AND features IS NOT NULL",
        {"v": version},
    )
    _, variants = serving_columns(rows, ["lag_1"])
    return int(variants.size)


def storefront_calls(info: StackInfo, shop: str, variants: list[int], version: str, rounds: int = 3) -> int:
    """Ask for every variant, ``rounds`` times, until the new observations are in the table."""
    import requests

    key = _predict_keys(info)[shop]
    url = info.url("predict")
    before = _observations(info, version)
    with requests.Session() as session:
        for _ in range(rounds):
            for start in range(0, len(variants), BATCH):
                body = {
                    "shop_domain": shop,
                    "horizon_days": 7,
                    "items": [{"variant_id": v} for v in variants[start : start + BATCH]],
                }
                status, _, served = _call(session, url, key, body)
                if status != 200 or served != version:
                    raise RuntimeError(f"predict answered {status} with model {served!r}, expected {version}")
    found, _ = _wait_for(
        f"{version}'s new answers in predictions",
        lambda: (n := _observations(info, version)) >= before + len(variants) // 2 and n,
        60,
        interval_s=0.5,
    )
    return int(found)


def drift_check(info: StackInfo, model: str) -> dict[str, Any]:
    """Publish a drift check as Cloud Scheduler does and wait for its ``drift_reports`` row."""
    from shared.adapters.pubsub import admin_clients

    settings = info.settings()
    before = len(_query(info, "SELECT check_id FROM drift_reports"))
    publisher, _ = admin_clients(settings)
    publisher.publish(settings.topic_path("drift-checks"), json.dumps({"model": model}).encode()).result(
        timeout=10
    )
    publisher.stop()

    def written() -> list[dict[str, Any]]:
        rows = _query(info, "SELECT * FROM drift_reports ORDER BY checked_at")
        return rows if len(rows) > before else []

    rows, _ = _wait_for("the drift check's row in drift_reports", written, 120, interval_s=0.5)
    return dict(rows[-1])


def shift_online_features(info: StackInfo, factor: float) -> dict[str, Any]:
    """Multiply every variant's latest history features and stock by ``factor`` and
    materialize them."""
    import pandas as pd

    from shared.features import HISTORY
    from shared.features.store import export_offline, materialize, write_repo

    home = Path(info.settings().home)
    offline = pd.read_parquet(write_repo(home).offline_path)
    latest = offline[offline["date"] == offline["date"].max()].copy()
    for name in (*HISTORY, *SHIFTED_STATE):
        latest[name] = latest[name] * factor
    export_offline(latest, home, created=datetime.now(UTC))
    day = pd.Timestamp(latest["date"].max()).date()
    materialize(home, day - timedelta(days=1), day)
    return {"day": str(day), "variants": int(latest["variant_id"].nunique()), "factor": factor}


def _summary(row: dict[str, Any]) -> str:
    drifted = row.get("drifted_features") or []
    return (
        f"{row['current_rows']} observations vs {row['reference_rows']} reference rows, "
        f"{row['features_judged']} features judged, drifted: {', '.join(drifted) or 'none'}; "
        f"severity {row['severity']}, alerts {row.get('alerts') or []}"
    )


def stage_drift(info: StackInfo, slack: SlackReceiver, shop: str) -> dict[str, Any]:
    settings = info.settings()
    model = settings.model_name
    before = _pointer(info, model)
    live, previous = before.live_version, before.previous_version
    if not live or not previous:
        raise RuntimeError(f"the drift stage needs a live and a previous version: {before}")
    variants = _variants(info, shop)
    observed = storefront_calls(info, shop, variants, live)
    first = drift_check(info, model)
    if first["rollback_requested"]:
        raise RuntimeError(f"the check before any shift already asked for a rollback: {first['reasons']}")
    say(
        f"drift check of {model} {live} on the storefront's inputs ({observed} observations): "
        f"{_summary(first)}"
    )

    shifted = shift_online_features(info, SHIFT)
    say(
        f"injected shift: the history features and stock of {shifted['variants']} variants x{SHIFT:g} "
        f"(online store, day {shifted['day']}); the storefront calls again"
    )
    storefront_calls(info, shop, variants, live)
    started = time.monotonic()
    second = drift_check(info, model)
    checked = time.monotonic() - started
    say(f"drift check after the shift ({checked:.1f} s): {_summary(second)}")
    if not second["rollback_requested"]:
        raise RuntimeError(f"the shifted inputs did not lead to a rollback request: {second['reasons']}")
    urls = _predict_urls(info)
    key = _predict_keys(info)[shop]
    body = {"shop_domain": shop, "horizon_days": 1, "items": [{"variant_id": variants[0]}]}
    import requests

    seen: dict[str, float] = {}
    with requests.Session() as session:
        while len(seen) < len(urls):
            for url in urls:
                if url not in seen and _call(session, url, key, body)[2] == previous:
                    seen[url] = time.monotonic() - started
            if time.monotonic() - started > 60:
                raise RuntimeError(f"after 60 s only {sorted(seen)} serve {previous}")
            time.sleep(0.02)
    rollback_seconds = max(seen.values())
    alerts = slack.received()
    latest = alerts[-1].get("text", "").replace("\n", " / ")[:200] if alerts else "-"
    say(
        f"Slack (local receiver) got {len(alerts)} alert(s): {latest}; "
        f"every predict instance ({len(urls)}) served {previous} {rollback_seconds:.2f} s after the check "
        f"was requested (the check itself took {second['duration_seconds']:.2f} s)"
    )
    third = drift_check(info, model)
    after = _pointer(info, model)
    rollbacks = _query(
        info,
        "SELECT version, idempotency_key FROM model_deployments WHERE action = 'rollback' "
        "AND requested_by = 'drift_monitor'",
    )
    say(
        f"next check on {third['live_version']}: rollback requested {third['rollback_requested']}; drift "
        f"rollbacks recorded: {len(rollbacks)}; live {after.live_version}"
    )
    report_path = Path(str(second["report_uri"]).removeprefix("file://"))
    REPORT_DIR.mkdir(exist_ok=True)
    shutil.copyfile(report_path, REPORT_DIR / "drift.html")
    say(f"drift report: {report_path} (copied to {REPORT_DIR / 'drift.html'})")
    return {
        "rollback_seconds": round(rollback_seconds, 2),
        "live_version_final": after.live_version,
        "drift_alerts": len(alerts),
        "drift_report": str(REPORT_DIR / "drift.html"),
        "drift": {
            "before_shift": {k: first[k] for k in ("current_rows", "drifted_features", "severity", "alerts")},
            "after_shift": {
                k: second[k]
                for k in (
                    "current_rows",
                    "drifted_features",
                    "drifted_importance",
                    "severity",
                    "alerts",
                    "reasons",
                )
            },
            "shift": shifted,
            "rolled_back": {"from": live, "to": previous, "per_instance_seconds": seen},
            "rollback_key": second["rollback_key"],
            "second_rollback_requested": third["rollback_requested"],
            "drift_rollbacks_recorded": len(rollbacks),
            "slack_alerts": [a.get("text", "")[:300] for a in alerts],
            "report_uri": second["report_uri"],
        },
    }
