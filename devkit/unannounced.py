"""A publisher for runs where nothing can hear ``model-events`` (no local stack, no cloud
project): the trainer still registers the model, and the caller says no message was sent."""

from __future__ import annotations

from collections.abc import Mapping


class UnannouncedPublisher:
    """``EventPublisher`` that keeps the topics it was asked to publish on and sends nothing."""

    def __init__(self) -> None:
        self.skipped: list[str] = []

    def publish(self, topic: str, data: bytes, attributes: Mapping[str, str]) -> str:
        self.skipped.append(topic)
        return "not-published"
