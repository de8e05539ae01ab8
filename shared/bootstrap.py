"""Wiring: the one place that builds adapters from settings.

Entry points ask here for what they need; everything is built lazily on first use (never at
import, so emulator variables set later are honoured and cold start stays short). Tests call
``override(...)`` to pass other adapters in, instead of patching internals.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.ports import EventPublisher, ModelRegistry, TrainingBackend, Warehouse
from shared.settings import Settings, get_settings

_lock = threading.Lock()
_overrides: dict[str, Any] = {}
_built: dict[str, Any] = {}


def override(**parts: Any) -> None:
    """Replace parts (``settings=``, ``publisher=``, ``warehouse=``, ``registry=``,
    ``training_backend=``) for this process; ``reset()`` undoes it."""
    with _lock:
        _overrides.update(parts)
        _built.clear()


def reset() -> None:
    with _lock:
        _overrides.clear()
        _built.clear()


def settings() -> Settings:
    found = _overrides.get("settings")
    return found if found is not None else get_settings()


def publisher() -> EventPublisher:
    if "publisher" in _overrides:
        return _overrides["publisher"]
    with _lock:
        if "publisher" not in _built:
            current = settings()
            if current.publisher == "client":
                from shared.adapters.pubsub import PubSubPublisher

                _built["publisher"] = PubSubPublisher(current)
            else:
                from shared.adapters.pubsub_group_commit import GroupCommitPublisher

                _built["publisher"] = GroupCommitPublisher(current)
        return _built["publisher"]


def warehouse() -> Warehouse:
    if "warehouse" in _overrides:
        return _overrides["warehouse"]
    with _lock:
        if "warehouse" not in _built:
            from shared.warehouse import create_warehouse

            _built["warehouse"] = create_warehouse(settings())
        return _built["warehouse"]


def build_registry(current: Settings) -> ModelRegistry:
    """A new registry for ``SHOPML_REGISTRY`` (file://, gs:// or vertex://); uncached."""
    if current.registry_url.startswith("vertex://"):
        from shared.adapters.vertex_registry import create_vertex_registry

        return create_vertex_registry(
            current.registry_url, current.vertex_staging_bucket, current.trainer_image
        )
    from shared.adapters.object_store_registry import ObjectStoreRegistry
    from shared.adapters.object_stores import create_object_store

    return ObjectStoreRegistry(create_object_store(current.registry_url, project=current.project))


def build_training_backend(current: Settings) -> TrainingBackend:
    """A new training backend for ``SHOPML_TRAINING_BACKEND`` (local or vertex); uncached."""
    from shared.adapters import training_backends

    if current.training_backend == "vertex":
        return training_backends.VertexTrainingBackend(current)
    return training_backends.LocalProcessBackend(current)


def registry() -> ModelRegistry:
    """The model registry named by ``SHOPML_REGISTRY``, built once."""
    if "registry" in _overrides:
        return _overrides["registry"]
    with _lock:
        if "registry" not in _built:
            _built["registry"] = build_registry(settings())
        return _built["registry"]


def training_backend() -> TrainingBackend:
    """Where the trainer runs (``SHOPML_TRAINING_BACKEND``: a local process or Vertex AI), built once."""
    if "training_backend" in _overrides:
        return _overrides["training_backend"]
    with _lock:
        if "training_backend" not in _built:
            _built["training_backend"] = build_training_backend(settings())
        return _built["training_backend"]
