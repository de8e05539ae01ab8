"""Ports: the small interfaces pure logic talks to. Adapters implement them per backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class EventPublisher(Protocol):
    """Publishes one message and returns only once the broker acknowledged it.

    Raises ``shared.errors.PublishFailed`` when the broker did not acknowledge in time.
    ``topic`` is a topology name (``shopify-events``); the adapter resolves prefix and project.
    """

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str: ...
