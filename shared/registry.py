"""Model registry rules shared by every registry adapter, and registering with its event.

Pure: semantic versions (parsing, ordering, the label form Vertex accepts), alias names, and
``register_model``, which the trainer calls to register a version and announce it on
``model-events`` (``deploy_model`` listens there). No cloud client is imported here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import PermanentError
from shared.ports import EventPublisher, ModelRegistry, ModelVersion, ObjectStore

MODEL_EVENTS_TOPIC = "model-events"
# A version's files, under ``<model>/<version>/`` in every registry's object store.
MODEL_FILE = "model.onnx"
CARD_FILE = "card.json"
CANDIDATE_ALIAS = "candidate"

# MAJOR.MINOR.PATCH with an optional pre-release (semver.org §9; build metadata is not allowed:
# it would make two different strings name the same precedence).
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
)
# Model names end up in label values, resource ids and folder names: the strictest of them.
_MODEL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
# Vertex AI's alias rule ([a-z][a-zA-Z0-9-]{0,126}[a-z0-9]), narrowed to lowercase.
_ALIAS = re.compile(r"[a-z](?:[a-z0-9-]{0,62}[a-z0-9])?")


class VersionExists(PermanentError):
    """``register`` was asked to store a version that is already registered."""


def is_semver(text: str) -> bool:
    return _SEMVER.fullmatch(text) is not None


def check_model_name(model: str) -> str:
    if not isinstance(model, str) or not _MODEL_NAME.fullmatch(model):
        raise PermanentError(
            f"model name {model!r} is not allowed: use 1-40 lowercase letters, digits, _ or -, "
            "starting with a letter (it becomes a label value and a folder name)"
        )
    return model


def check_version(version: str) -> str:
    if not isinstance(version, str) or not is_semver(version):
        raise PermanentError(f"model version {version!r} is not a semantic version such as 1.3.0")
    return version


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or is_semver(alias):
        raise PermanentError(
            f"alias {alias!r} is not allowed: use lowercase letters, digits and -, starting with a "
            "letter and not ending with -, at most 64 characters"
        )
    return alias


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key giving semantic-version precedence (1.10.0 > 1.9.0; 2.0.0-rc.1 < 2.0.0)."""
    match = _SEMVER.fullmatch(check_version(version))
    if match is None:  # check_version accepted it, so the same pattern matches
        raise PermanentError(f"version {version!r} is not a semantic version")
    major, minor, patch, pre = match.groups()
    if pre is None:
        # A release ranks above every pre-release of the same version.
        return (int(major), int(minor), int(patch), 1, ())
    # Numeric identifiers rank below alphanumeric ones and compare as numbers.
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, parts)


def sort_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=version_key)


def version_label(version: str) -> str:
    """The version as a GCP label value ([a-z0-9_-] only): ``1.3.0`` → ``1-3-0``."""
    return check_version(version).lower().replace(".", "-")


def register_model(
    registry: ModelRegistry,
    publisher: EventPublisher,
    model: str,
    version: str,
    onnx_bytes: bytes,
    card: Mapping[str, Any],
    promote: bool,
) -> ModelVersion:
    """Register ``version`` and announce it on ``model-events``.

    ``promote``: the trainer's own gates passed (better than the baseline and the champion,
    ONNX parity); the version gets the ``candidate`` alias and the event type
    ``candidate_registered``, which ``deploy_model`` acts on. Otherwise the version is kept for
    the record without an alias and the event is ``rejected``.

    The registry write comes first: if the publish fails (``PublishFailed``, transient), the
    version is registered but unannounced, and a retry raises ``VersionExists``; the caller
    announces it again with ``publish_model_event``.
    """
    registered = registry.register(
        check_model_name(model),
        check_version(version),
        onnx_bytes,
        card,
        aliases=(CANDIDATE_ALIAS,) if promote else (),
    )
    publish_model_event(publisher, registered, promote)
    return registered


def publish_model_event(publisher: EventPublisher, registered: ModelVersion, promote: bool) -> str:
    """Publish the ``model-events`` message for an already registered version."""
    decision = "candidate" if promote else "rejected"
    body = {
        "model": registered.model,
        "version": registered.version,
        "uri": registered.uri,
        "aliases": list(registered.aliases),
        "decision": decision,
    }
    attributes = {
        "event_type": "candidate_registered" if promote else "rejected",
        "model": registered.model,
        "version": registered.version,
    }
    return publisher.publish(MODEL_EVENTS_TOPIC, json.dumps(body, sort_keys=True).encode(), attributes)


def check_registration(model: str, version: str, aliases: Sequence[str]) -> None:
    """What every adapter's ``register`` checks first: names, version and aliases."""
    check_model_name(model)
    check_version(version)
    for alias in aliases:
        check_alias(alias)


def store_version_files(
    store: ObjectStore, model: str, version: str, onnx_model: bytes, card: Mapping[str, Any]
) -> str:
    """Write ``model.onnx`` then ``card.json`` (the card marks a complete version); the folder's URI."""
    card_bytes = json.dumps(dict(card), sort_keys=True, indent=2, default=str).encode()
    store.put(f"{model}/{version}/{MODEL_FILE}", onnx_model, "application/octet-stream")
    store.put(f"{model}/{version}/{CARD_FILE}", card_bytes, "application/json")
    return store.uri(f"{model}/{version}")


def read_model_file(store: ObjectStore, version: ModelVersion) -> bytes:
    data = store.get(f"{version.model}/{version.version}/{MODEL_FILE}")
    if data is None:
        raise PermanentError(f"{version.uri}/{MODEL_FILE} is missing")
    return data
