"""``shopml connect``: subscribe a shop to the topics shopml needs, idempotently.

1. List the shop's subscriptions (``webhookSubscriptions``, paginated).
2. Plan (``shared.storesync.subscriptions``): create what is missing, update ours that point at
   the wrong address, delete ours that are stale; leave others alone.
3. Apply the plan (``webhookSubscriptionCreate`` / ``Update`` / ``Delete``) and print each change;
   a second run finds nothing to do and changes nothing.
4. Write the ``[webhooks]`` section of ``shopify.app.toml`` (``app/uninstalled`` and the privacy
   topics, to ``ingest_webhook`` over HTTPS).
5. Record the shop as connected in the sync state (``reconcile`` polls it) and clear an earlier
   ``app/uninstalled`` mark (a reinstall).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from devkit.app_toml import write_webhooks_section
from shared.adapters.shopify_admin import AdminApiError, ShopifyAdmin
from shared.storesync.state import SyncState
from shared.storesync.subscriptions import (
    APP_TOML_TOPICS,
    Change,
    Delivery,
    Existing,
    plan_subscriptions,
    shop_topics,
    summary,
    topic_enum,
    topic_name,
)

LIST = """query($after: String) { webhookSubscriptions(first: 100, after: $after) {
  nodes { id topic uri } pageInfo { hasNextPage endCursor } } }"""
CREATE = """mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id } userErrors { field message } } }"""
UPDATE = """mutation($id: ID!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $sub) {
    webhookSubscription { id } userErrors { field message } } }"""
DELETE = """mutation($id: ID!) { webhookSubscriptionDelete(id: $id) {
  deletedWebhookSubscriptionId userErrors { field message } } }"""


@dataclass
class ConnectReport:
    shop: str
    changes: list[Change] = field(default_factory=list)
    toml_changed: bool = False
    reinstalled: bool = False

    @property
    def changed(self) -> bool:
        return self.toml_changed or any(c.action in ("create", "update", "delete") for c in self.changes)


def existing_subscriptions(admin: ShopifyAdmin) -> list[Existing]:
    return [
        Existing(node["id"], topic_name(node["topic"]), node["uri"])
        for node in admin.paginate(LIST, {}, ("webhookSubscriptions",))
    ]


def _apply(admin: ShopifyAdmin, change: Change) -> None:
    if change.action == "create":
        data = admin.execute(
            CREATE, {"topic": topic_enum(change.topic), "sub": {"uri": change.uri, "format": "JSON"}}
        )
        payload = data["webhookSubscriptionCreate"]
    elif change.action == "update":
        data = admin.execute(UPDATE, {"id": change.id, "sub": {"uri": change.uri}})
        payload = data["webhookSubscriptionUpdate"]
    elif change.action == "delete":
        payload = admin.execute(DELETE, {"id": change.id})["webhookSubscriptionDelete"]
    else:
        return
    errors = payload.get("userErrors") or []
    if errors:
        raise AdminApiError(f"{change.action} {change.topic} → {change.uri}: {errors[0]['message']}", errors)


def connect(
    admin: ShopifyAdmin,
    delivery: Delivery,
    store_topics: Sequence[str],
    compliance_topics: Sequence[str],
    *,
    api_version: str,
    app_toml: Path | None,
    state: SyncState | None,
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> ConnectReport:
    report = ConnectReport(admin.shop)
    report.changes = plan_subscriptions(existing_subscriptions(admin), shop_topics(store_topics), delivery)
    for change in report.changes:
        if change.action == "keep":
            continue
        if not dry_run:
            _apply(admin, change)
        say(("would " if dry_run else "") + change.describe())
    if app_toml is not None and not dry_run:
        toml_topics = [t for t in APP_TOML_TOPICS if t in store_topics]
        report.toml_changed = write_webhooks_section(
            app_toml, api_version, delivery.https_uri, toml_topics, compliance_topics
        )
        if report.toml_changed:
            say(f"wrote   [webhooks] of {app_toml} ({', '.join(toml_topics)} and the privacy topics)")
    if state is not None and not dry_run:
        report.reinstalled = state.clear_uninstalled(admin.shop)
        if report.reinstalled:
            say(f"{admin.shop} was marked uninstalled: reconcile polls it again")
        if (state.connected(admin.shop) or {}).get("delivery") != delivery.mode:
            state.mark_connected(
                admin.shop,
                {"delivery": delivery.mode, "connected_at": datetime.now(UTC).isoformat(timespec="seconds")},
            )
    counts = summary(report.changes)
    say(
        f"{admin.shop}: {counts['create']} created, {counts['update']} updated, {counts['delete']} deleted, "
        f"{counts['keep']} unchanged"
        + (f", {counts['foreign']} not ours left alone" if counts["foreign"] else "")
        + ("" if report.changed or dry_run else " — nothing to change")
    )
    return report
