"""What ``shopml connect`` subscribes, and where: pure planning, no I/O.

Where a topic is subscribed (each topic in exactly one place, so Shopify never delivers it
twice):

* **App-specific, in ``shopify.app.toml``** (``[webhooks]``, deployed with the app; Shopify keeps
  them on every shop): the privacy topics, which can *only* be subscribed there
  (``compliance_topics``), and ``app/uninstalled``. Both always go to ``ingest_webhook`` over
  HTTPS: its HMAC check guards them and it routes the privacy topics to the ``compliance``
  topic.
* **Shop-specific, through ``webhookSubscriptionCreate``**: every other store topic, either to
  ``ingest_webhook``'s HTTPS address or to ``pubsub://<project>:<topic>`` (Shopify publishes to
  ``shopify-events`` itself). Never both for one topic.

``plan_subscriptions`` compares what the shop has (``webhookSubscriptions``) with that and
returns the changes: create what is missing, update a subscription of ours that points at the
wrong address, delete ours that are stale (a topic no longer wanted, a duplicate, the other
delivery of a topic, a topic the toml already covers). "Ours" means an address shopml
delivers to (the ingest origin or a ``pubsub://`` topic of our project); anything else the app
has subscribed is left alone and reported. Applied twice, the second plan is empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import PermanentError

APP_TOML_TOPICS: tuple[str, ...] = ("app/uninstalled",)


def topic_enum(topic: str) -> str:
    """``orders/create`` → ``ORDERS_CREATE`` (``WebhookSubscriptionTopic``)."""
    return topic.replace("/", "_").upper()


def topic_name(enum: str) -> str:
    """``ORDERS_CREATE`` → ``orders/create`` (the topics here have one ``/``, after the resource)."""
    resource, _, action = enum.lower().rpartition("_")
    return f"{resource}/{action}"


@dataclass(frozen=True)
class Existing:
    id: str
    topic: str  # orders/create
    uri: str


@dataclass(frozen=True)
class Change:
    action: str  # create, update, delete, keep, foreign
    topic: str
    uri: str
    id: str | None = None
    old_uri: str | None = None

    def describe(self) -> str:
        if self.action == "update":
            return f"update  {self.topic:<24} {self.old_uri} -> {self.uri}"
        if self.action == "foreign":
            return f"leave   {self.topic:<24} {self.uri} (not an address of shopml)"
        return f"{self.action:<7} {self.topic:<24} {self.uri}"


@dataclass(frozen=True)
class Delivery:
    """Where the shop-specific topics go: ``https`` (ingest_webhook) or ``pubsub``."""

    mode: str
    https_uri: str
    pubsub_uri: str = ""

    def __post_init__(self) -> None:
        if self.mode not in ("https", "pubsub"):
            raise PermanentError(f"delivery {self.mode!r}: choose https or pubsub")
        if not self.https_uri.startswith(("https://", "http://")):
            raise PermanentError(f"ingest_webhook address {self.https_uri!r} must be an https:// URL")
        if self.mode == "pubsub" and not self.pubsub_uri.startswith("pubsub://"):
            raise PermanentError("pubsub delivery needs a pubsub://<project>:<topic> address")

    @property
    def uri(self) -> str:
        return self.pubsub_uri if self.mode == "pubsub" else self.https_uri

    def owns(self, uri: str) -> bool:
        """An address shopml delivers to: the ingest origin, or a Pub/Sub topic of our project."""
        if uri.startswith("pubsub://"):
            ours = self.pubsub_uri or ""
            return bool(ours) and uri.split(":")[1] == ours.split(":")[1]
        ingest = urlsplit(self.https_uri)
        other = urlsplit(uri)
        return (other.scheme, other.netloc) == (ingest.scheme, ingest.netloc)


def pubsub_uri(project: str, topic: str) -> str:
    return f"pubsub://{project}:{topic}"


def shop_topics(store_topics: Iterable[str]) -> list[str]:
    """The topics subscribed per shop: the store topics less those the app toml holds."""
    return [t for t in store_topics if t not in APP_TOML_TOPICS]


def plan_subscriptions(
    existing: Sequence[Existing], topics: Iterable[str], delivery: Delivery
) -> list[Change]:
    """The changes that make the shop's subscriptions exactly ``topics`` → ``delivery.uri``."""
    wanted = list(dict.fromkeys(topics))
    by_topic: dict[str, list[Existing]] = {}
    for sub in existing:
        by_topic.setdefault(sub.topic, []).append(sub)
    changes: list[Change] = []
    for topic in wanted:
        subs = by_topic.pop(topic, [])
        ours = [s for s in subs if delivery.owns(s.uri)]
        changes += [Change("foreign", topic, s.uri, s.id) for s in subs if not delivery.owns(s.uri)]
        exact = next((s for s in ours if s.uri == delivery.uri), None)
        if exact is not None:
            changes.append(Change("keep", topic, exact.uri, exact.id))
        elif ours:
            fix = ours[0]
            changes.append(Change("update", topic, delivery.uri, fix.id, fix.uri))
            exact = fix
        else:
            changes.append(Change("create", topic, delivery.uri))
        changes += [Change("delete", topic, s.uri, s.id) for s in ours if s is not exact]
    for topic, subs in sorted(by_topic.items()):  # topics no longer wanted here
        for sub in subs:
            action = "delete" if delivery.owns(sub.uri) else "foreign"
            changes.append(Change(action, topic, sub.uri, sub.id))
    return changes


def summary(changes: Sequence[Change]) -> Mapping[str, int]:
    counts = {"create": 0, "update": 0, "delete": 0, "keep": 0, "foreign": 0}
    for change in changes:
        counts[change.action] += 1
    return counts
