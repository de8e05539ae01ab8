"""predict on the Firestore emulator: the pointer read over REST, and the snapshot listener that
starts after the first answer (off the cold start) and then delivers a flip by itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shared.adapters.firestore_pointer import FirestorePointerStore
from shared.adapters.firestore_rest import FirestoreRestPointerStore
from shared.serving.pointer import LivePointer, deploy
from tests.contract.test_live_pointer_contract import firestore_emulator  # noqa: F401 (fixture)
from tests.fakes import RecordingPublisher
from tests.functions.predict_support import (
    KEY,
    MODEL,
    NOW,
    SHOP,
    FeatureServer,
    card,
    online_row,
    serve,
    settings,
    train_onnx,
    write_version,
)

pytestmark = pytest.mark.integration


class CountingReads:
    """The REST store, counting its reads (``get``); the listener and writes pass through."""

    def __init__(self, inner: FirestoreRestPointerStore) -> None:
        self.inner = inner
        self.reads = 0

    def get(self, model: str) -> LivePointer:
        self.reads += 1
        return self.inner.get(model)

    def compare_and_swap(self, model: str, expected_generation: int, new: LivePointer) -> bool:
        return self.inner.compare_and_swap(model, expected_generation, new)

    def watch(self, model: str, callback: Callable[[LivePointer], None]) -> Callable[[], None]:
        return self.inner.watch(model, callback)


def ask(client: Any) -> str:
    body = {"shop_domain": SHOP, "horizon_days": 3, "items": [{"variant_id": 101}]}
    response = client.post("/", json=body, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200
    return str(response.json()["model_version"])


def test_the_listener_starts_after_the_first_answer_and_delivers_a_flip_without_a_re_read(
    tmp_path: Path,
    firestore_emulator: str,  # noqa: F811
) -> None:
    store = None
    for version, scale in (("1.0.0", 1.0), ("2.0.0", 3.0)):
        store = write_version(tmp_path, version, train_onnx(scale, seed=1)[0], card(version))
    assert store is not None
    project = f"listen-{uuid.uuid4().hex[:8]}"
    writer = FirestorePointerStore(project, emulator_host=firestore_emulator)
    first = deploy(LivePointer(MODEL), "1.0.0", NOW, "deploy 1.0.0")
    assert writer.compare_and_swap(MODEL, 0, first)
    pointers = CountingReads(FirestoreRestPointerStore(project, emulator_host=firestore_emulator))
    # A copy that never gets old: only the listener can bring the flip.
    config = settings(SHOPML_POINTER_MAX_AGE_SECONDS="100000")
    client, runtime = serve(
        config,
        pointers,
        store,
        FeatureServer({101: online_row()}),
        RecordingPublisher(),
        watch_after_first_answer=True,
    )
    try:
        assert runtime.slots._stop_watch is None  # nothing listens before the first answer
        assert ask(client) == "1.0.0"
        for _ in range(300):  # the listener starts in a thread once the answer is sent
            if runtime.slots._stop_watch is not None:
                break
            time.sleep(0.05)
        assert runtime.slots._stop_watch is not None
        assert writer.compare_and_swap(MODEL, 1, deploy(first, "2.0.0", NOW, "deploy 2.0.0"))
        versions = []
        for _ in range(200):
            versions.append(ask(client))
            if versions[-1] == "2.0.0":
                break
            time.sleep(0.05)
        assert versions[-1] == "2.0.0" and set(versions) <= {"1.0.0", "2.0.0"}
        assert pointers.reads == 1  # the first answer's read; the flip came from the listener
    finally:
        runtime.slots.close()
