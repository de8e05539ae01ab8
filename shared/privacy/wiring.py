"""``PrivacyDeps`` from settings: the warehouse from ``shared.bootstrap``, the exports store
(``SHOPML_PRIVACY_EXPORTS``), the PII hash key, and the dead-letter hold subscriptions when
there is a Pub/Sub to hold them (the cloud, or the local stack's emulator: a project other than
the local default, or ``PUBSUB_EMULATOR_HOST``), and the local feature store when this home
has one (``SHOPML_HOME/features``). Built on first use, never at import."""

from __future__ import annotations

from typing import cast

from shared import bootstrap
from shared.features.store import FeatureRepo
from shared.ports import MutableWarehouse
from shared.privacy.feature_store import LocalFeatureStore
from shared.privacy.service import PrivacyDeps
from shared.settings import Settings


def has_pubsub(settings: Settings) -> bool:
    return bool(settings.pubsub_emulator_host) or settings.project != Settings().project


def build_deps(
    settings: Settings, warehouse: MutableWarehouse | None = None, *, dead_letters: bool = True
) -> PrivacyDeps:
    """Everything a privacy request needs; ``warehouse`` defaults to ``bootstrap.warehouse()``."""
    from shared.adapters.object_stores import create_object_store

    queue = None
    if dead_letters and has_pubsub(settings):
        from shared.adapters.pubsub_dead_letters import PubSubDeadLetters

        queue = PubSubDeadLetters(settings)
    repo = FeatureRepo(settings.home)
    return PrivacyDeps(
        warehouse=warehouse if warehouse is not None else cast(MutableWarehouse, bootstrap.warehouse()),
        feature_store=LocalFeatureStore(settings.home) if repo.root.is_dir() else None,
        exports=create_object_store(settings.privacy_exports_url, project=settings.project),
        hash_key=settings.pii_hash_key.encode("utf-8"),
        dead_letters=queue,
    )
