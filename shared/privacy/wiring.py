"""``PrivacyDeps`` from settings: the warehouse from ``shared.bootstrap``, the exports store
(``SHOPML_PRIVACY_EXPORTS``), the PII hash key, and the dead-letter hold subscriptions when
there is a Pub/Sub to hold them (the cloud, or the local stack's emulator: a project other than
the local default, or ``PUBSUB_EMULATOR_HOST``), and the local feature store when this home
has one (``SHOPML_HOME/features``). Built on first use, never at import."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

from shared import bootstrap
from shared.features.store import FeatureRepo
from shared.ports import MutableWarehouse
from shared.privacy.feature_store import LocalFeatureStore
from shared.privacy.requests import CUSTOMER_REDACT, PrivacyRequest
from shared.privacy.scrub import keyed_hash
from shared.privacy.service import PrivacyDeps, PrivacyOutcome, handle_request
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


def redact_customer(
    warehouse: MutableWarehouse,
    settings: Settings,
    shop_domain: str,
    customer_id: int,
    *,
    email: str | None = None,
    phone: str | None = None,
    order_ids: Sequence[int] = (),
    dead_letters: bool = False,
) -> PrivacyOutcome:
    """``customers/redact`` of one customer, run in process (the demo, an operator): the same
    steps and audit row as the compliance function, with ``local-redact:<shop>:<hash of the
    id>`` as the request id, so running it again changes nothing and answers the same counts
    (``outcome.redacted_rows``). ``dead_letters``: also drop held dead letters about the
    customer (needs the Pub/Sub emulator or the cloud; each empty hold subscription costs a
    pull timeout)."""
    shop = shop_domain.lower()
    # Never the id in clear in the audit table: its keyed hash (a plain digest without a key).
    who = (
        keyed_hash(settings.pii_hash_key.encode(), "id", str(customer_id))
        or hashlib.sha256(f"{shop}:{customer_id}".encode()).hexdigest()
    )
    request = PrivacyRequest(
        CUSTOMER_REDACT,
        shop,
        f"local-redact:{shop}:{who[:32]}",
        customer_id=customer_id,
        email=email,
        phone=phone,
        order_ids=tuple(sorted(set(order_ids))),
        requested_at=datetime.now(UTC),
    )
    return handle_request(request, build_deps(settings, warehouse, dead_letters=dead_letters))
