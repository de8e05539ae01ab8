"""The messaging topology (topics, push subscriptions, dead letters) and function catalogue.

Read from ``shared/topology.json``, the file Terraform reads too, so the local stack and the
cloud cannot drift apart.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOPOLOGY_FILE = Path(__file__).with_name("topology.json")


def _seconds(duration: str) -> int:
    if not duration.endswith("s"):
        raise ValueError(f"duration {duration!r} must be written in seconds, e.g. '10s'")
    return int(duration[:-1])


@dataclass(frozen=True)
class Subscription:
    name: str
    topic: str
    push_to: str
    ack_deadline_seconds: int
    max_delivery_attempts: int
    min_backoff_seconds: int
    max_backoff_seconds: int
    dead_letter_topic: str


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger: str  # "http" or "pubsub"
    public: bool
    publishes: tuple[str, ...]

    @property
    def source(self) -> Path:
        return Path(__file__).resolve().parent.parent / "functions" / self.name / "main.py"

    @property
    def implemented(self) -> bool:
        return self.source.is_file()


@dataclass(frozen=True)
class Topology:
    topics: tuple[str, ...]
    subscriptions: tuple[Subscription, ...]
    functions: tuple[FunctionSpec, ...]

    def function(self, name: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.name == name:
                return spec
        raise KeyError(f"no function {name!r} in {TOPOLOGY_FILE.name}")

    def subscriptions_for(self, function: str) -> tuple[Subscription, ...]:
        return tuple(s for s in self.subscriptions if s.push_to == function)


def parse_topology(raw: dict[str, Any]) -> Topology:
    topics = tuple(raw["topics"])
    functions = tuple(
        FunctionSpec(
            name=name,
            trigger=spec["trigger"],
            public=bool(spec.get("public", False)),
            publishes=tuple(spec.get("publishes", ())),
        )
        for name, spec in raw["functions"].items()
    )
    subscriptions = tuple(
        Subscription(
            name=name,
            topic=spec["topic"],
            push_to=spec["push_to"],
            ack_deadline_seconds=int(spec["ack_deadline_seconds"]),
            max_delivery_attempts=int(spec["max_delivery_attempts"]),
            min_backoff_seconds=_seconds(spec["min_backoff"]),
            max_backoff_seconds=_seconds(spec["max_backoff"]),
            dead_letter_topic=spec["dead_letter_topic"],
        )
        for name, spec in raw["subscriptions"].items()
    )
    names = {f.name for f in functions}
    for sub in subscriptions:
        for topic in (sub.topic, sub.dead_letter_topic):
            if topic not in topics:
                raise ValueError(f"subscription {sub.name} names unknown topic {topic!r}")
        if sub.push_to not in names:
            raise ValueError(f"subscription {sub.name} pushes to unknown function {sub.push_to!r}")
    for fn in functions:
        for topic in fn.publishes:
            if topic not in topics:
                raise ValueError(f"function {fn.name} publishes to unknown topic {topic!r}")
    return Topology(topics=topics, subscriptions=subscriptions, functions=functions)


@functools.cache
def load_topology(path: Path = TOPOLOGY_FILE) -> Topology:
    return parse_topology(json.loads(path.read_text()))
