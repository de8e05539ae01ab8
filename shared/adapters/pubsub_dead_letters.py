"""Dead letters held on Pub/Sub: the ``<dead-letter topic>-hold`` pull subscriptions.

Terraform (infra/modules/pubsub) and the local stack (``shared.adapters.pubsub``) create one
per dead-letter topic of the topology; nothing consumes them automatically, so a message about
a customer may wait there for days (retention 7 days). ``purge`` is how a privacy request
reaches them: it pulls everything held, acknowledges (drops) what the predicate accepts, and
gives the rest back at once (ack deadline 0) so an operator still finds it.

Pub/Sub cannot delete one message by id: pulling and acknowledging is the only way. A message
is pulled at most once per purge (ids remembered), so a subscription with N held messages
costs about N/100 pulls. google-cloud-pubsub is imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.errors import TransientError
from shared.settings import Settings
from shared.topology import Topology, load_topology

HOLD_SUFFIX = "-hold"


def hold_subscriptions(topology: Topology) -> list[str]:
    """The hold subscription of every dead-letter topic of the topology, sorted."""
    return sorted({f"{sub.dead_letter_topic}{HOLD_SUFFIX}" for sub in topology.subscriptions})


class PubSubDeadLetters:
    """``DeadLetterQueue`` (shared.privacy.redaction) on the hold subscriptions."""

    def __init__(
        self,
        settings: Settings,
        subscriptions: list[str] | None = None,
        *,
        subscriber: Any = None,
        pull_timeout_seconds: float = 2.0,
        max_messages: int = 100_000,
    ) -> None:
        self.settings = settings
        self.subscriptions = (
            subscriptions if subscriptions is not None else hold_subscriptions(load_topology())
        )
        self.pull_timeout_seconds = pull_timeout_seconds
        self.max_messages = max_messages
        self._subscriber = subscriber

    @property
    def subscriber(self) -> Any:
        if self._subscriber is None:
            from shared.adapters.pubsub import admin_clients

            _, self._subscriber = admin_clients(self.settings)
        return self._subscriber

    def purge(self, matches: Callable[[bytes, Mapping[str, str]], bool]) -> dict[str, int]:
        """Drop the held messages ``matches`` accepts; dropped count per subscription."""
        from google.api_core import exceptions

        dropped: dict[str, int] = {}
        for name in self.subscriptions:
            path = self.settings.subscription_path(name)
            try:
                dropped[name] = self._purge_one(path, matches)
            except exceptions.NotFound:
                dropped[name] = 0  # not created (a partial deployment): nothing held there
            except exceptions.GoogleAPICallError as exc:
                raise TransientError(f"dead letters {name}: {exc}") from exc
        return dropped

    def _purge_one(self, path: str, matches: Callable[[bytes, Mapping[str, str]], bool]) -> int:
        from google.api_core import exceptions

        subscriber = self.subscriber
        seen: set[str] = set()
        kept: list[str] = []
        dropped = 0
        try:
            while len(seen) < self.max_messages:
                try:
                    response = subscriber.pull(
                        subscription=path, max_messages=100, timeout=self.pull_timeout_seconds
                    )
                except exceptions.DeadlineExceeded:
                    break  # the emulator blocks on an empty subscription, then times out
                received = list(response.received_messages)
                fresh = [m for m in received if m.message.message_id not in seen]
                kept += [m.ack_id for m in received if m.message.message_id in seen]
                if not fresh:
                    break
                drop = []
                for item in fresh:
                    seen.add(item.message.message_id)
                    if matches(bytes(item.message.data), dict(item.message.attributes)):
                        drop.append(item.ack_id)
                    else:
                        kept.append(item.ack_id)
                if drop:
                    subscriber.acknowledge(subscription=path, ack_ids=drop)
                    dropped += len(drop)
        finally:
            for start in range(0, len(kept), 1000):  # give the others back now, not at the deadline
                subscriber.modify_ack_deadline(
                    subscription=path, ack_ids=kept[start : start + 1000], ack_deadline_seconds=0
                )
        return dropped
