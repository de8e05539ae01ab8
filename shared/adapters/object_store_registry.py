"""The model registry over an object store: a folder locally, a GCS bucket and prefix alike.

Layout (docs/DESIGN.md, "Interfaces others rely on")::

    <model>/<version>/model.onnx    the exported model
    <model>/<version>/card.json     its model card; written last, so it is the version's entry
    <model>/aliases.json            {"candidate": "1.3.0", ...}: one document per model

What it guarantees, and what not:

* Every object is replaced whole (``ObjectStore.put``: rename locally, a single upload on
  GCS): a reader sees a version with both files or not at all (``card.json`` is written after
  ``model.onnx``), and the old or the new alias document, never a torn one.
* A registered version is immutable: ``register`` refuses a version whose ``card.json``
  exists. The check and the write are two steps (GCS preconditions cannot be tested on the
  emulator, so none are used): two processes registering the *same* version at the same
  instant could both pass the check. The training run id (one run per model and night) is
  what keeps that from happening.
* ``set_alias`` is read-modify-write on ``aliases.json``: concurrent alias changes on the same
  model are last-writer-wins. One writer per model at a time is assumed (the trainer
  registers, ``deploy_model`` moves aliases); the live serving pointer, which does need
  compare-and-swap, lives in Firestore (docs/DESIGN.md, "Serving and blue-green"), not here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.ports import ModelVersion, ObjectStore
from shared.registry import (
    CARD_FILE,
    VersionExists,
    check_alias,
    check_model_name,
    check_registration,
    check_version,
    is_semver,
    read_model_file,
    sort_versions,
    store_version_files,
)

ALIASES_FILE = "aliases.json"


class ObjectStoreRegistry:
    """``ModelRegistry`` on any ``ObjectStore`` (``LocalObjectStore`` or ``GcsObjectStore``)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    # --- reading ------------------------------------------------------------------------

    def _aliases(self, model: str) -> dict[str, str]:
        raw = self.store.get(f"{model}/{ALIASES_FILE}")
        if raw is None:
            return {}
        try:
            aliases = json.loads(raw)
        except ValueError as exc:
            raise PermanentError(f"{self.store.uri(f'{model}/{ALIASES_FILE}')} is not JSON: {exc}") from None
        if not isinstance(aliases, dict):
            raise PermanentError(f"{self.store.uri(f'{model}/{ALIASES_FILE}')} must be a JSON object")
        return {str(k): str(v) for k, v in aliases.items()}

    def _version(self, model: str, version: str, aliases: Mapping[str, str]) -> ModelVersion | None:
        raw = self.store.get(f"{model}/{version}/{CARD_FILE}")
        if raw is None:
            return None
        return ModelVersion(
            model=model,
            version=version,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            uri=self.store.uri(f"{model}/{version}"),
            card=json.loads(raw),
        )

    def get(self, model: str, ref: str) -> ModelVersion | None:
        check_model_name(model)
        aliases = self._aliases(model)
        version = ref if is_semver(ref) else aliases.get(ref)
        return None if version is None else self._version(model, version, aliases)

    def versions(self, model: str) -> list[ModelVersion]:
        check_model_name(model)
        aliases = self._aliases(model)
        names = {
            key.split("/")[1]
            for key in self.store.list(f"{model}/")
            if key.count("/") == 2 and key.endswith(f"/{CARD_FILE}") and is_semver(key.split("/")[1])
        }
        found = (self._version(model, v, aliases) for v in sort_versions(list(names)))
        return [v for v in found if v is not None]

    def load_onnx(self, version: ModelVersion) -> bytes:
        return read_model_file(self.store, version)

    # --- writing ------------------------------------------------------------------------

    def register(
        self,
        model: str,
        version: str,
        onnx_model: bytes,
        card: Mapping[str, Any],
        aliases: Sequence[str] = (),
    ) -> ModelVersion:
        check_registration(model, version, aliases)
        if self.store.exists(f"{model}/{version}/{CARD_FILE}"):
            raise VersionExists(
                f"{model} {version} is already registered at {self.store.uri(f'{model}/{version}')}; "
                "registered versions are immutable, bump the version"
            )
        store_version_files(self.store, model, version, onnx_model, card)
        if aliases:
            self._move_aliases(model, {alias: version for alias in aliases})
        registered = self._version(model, version, self._aliases(model))
        if registered is None:
            raise TransientError(f"{model} {version} was written but cannot be read back; try again")
        return registered

    def set_alias(self, model: str, alias: str, version: str) -> None:
        check_model_name(model)
        check_alias(alias)
        check_version(version)
        if not self.store.exists(f"{model}/{version}/{CARD_FILE}"):
            raise PermanentError(f"cannot point alias {alias!r} at {model} {version}: no such version")
        self._move_aliases(model, {alias: version})

    def _move_aliases(self, model: str, moves: Mapping[str, str]) -> None:
        aliases = self._aliases(model)
        aliases.update(moves)
        document = json.dumps(dict(sorted(aliases.items())), indent=2).encode()
        self.store.put(f"{model}/{ALIASES_FILE}", document, "application/json")


# The DESIGN name for the local flavour: the same class over a folder.
LocalRegistry = ObjectStoreRegistry
