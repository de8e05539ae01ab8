"""The object-store registry on GCS, with the real google-cloud-storage client against
``gcp-storage-emulator`` (which ignores preconditions: nothing here relies on them)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.adapters.object_store_registry import ObjectStoreRegistry
from shared.adapters.object_stores import GcsObjectStore, create_object_store
from shared.registry import VersionExists, register_model
from tests.fakes import RecordingPublisher

pytestmark = pytest.mark.integration

ONNX = b"\x08\x07onnx-bytes"
CARD = {"metrics": {"wape": 0.21}}
PROJECT = "shopml-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def emulator_host() -> Iterator[str]:
    port = free_port()
    binary = Path(sys.executable).with_name("gcp-storage-emulator")
    process = subprocess.Popen(
        [str(binary), "start", "--port", str(port), "-H", "127.0.0.1", "--in-memory"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    host = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"gcp-storage-emulator did not start on port {port}")
                time.sleep(0.1)
        yield host
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@pytest.fixture
def client(emulator_host: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_host)
    from shared.adapters.object_stores import storage_client

    return storage_client(PROJECT)


@pytest.fixture
def bucket(client, request: pytest.FixtureRequest) -> str:  # type: ignore[no-untyped-def]
    name = f"shopml-{request.node.name.replace('_', '-')[:40].lower()}"
    client.create_bucket(name)
    return name


@pytest.fixture
def registry(client, bucket: str) -> ObjectStoreRegistry:  # type: ignore[no-untyped-def]
    return ObjectStoreRegistry(GcsObjectStore(bucket, "models/registry", client=client))


def test_register_and_get_by_version_and_alias_on_gcs(registry, client, bucket: str) -> None:  # type: ignore[no-untyped-def]
    registered = registry.register("demand", "1.3.0", ONNX, CARD, aliases=("candidate",))
    assert registered.uri == f"gs://{bucket}/models/registry/demand/1.3.0"
    names = sorted(blob.name for blob in client.list_blobs(bucket))
    assert names == [
        "models/registry/demand/1.3.0/card.json",
        "models/registry/demand/1.3.0/model.onnx",
        "models/registry/demand/aliases.json",
    ]
    assert registry.get("demand", "1.3.0") == registered
    assert registry.get("demand", "candidate") == registered
    assert registry.load_onnx(registered) == ONNX
    assert registry.get("demand", "live") is None


def test_alias_moves_and_duplicates_are_refused_on_gcs(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register("demand", "1.0.0", ONNX, CARD, aliases=("candidate",))
    registry.register("demand", "1.1.0", ONNX, CARD, aliases=("candidate",))
    registry.set_alias("demand", "live", "1.0.0")
    assert registry.get("demand", "candidate").version == "1.1.0"
    assert registry.get("demand", "1.0.0").aliases == ("live",)
    with pytest.raises(VersionExists):
        registry.register("demand", "1.1.0", b"x", CARD)


def test_versions_sorted_semantically_on_gcs(registry) -> None:  # type: ignore[no-untyped-def]
    for version in ("1.10.0", "1.2.0", "1.9.0", "2.0.0-rc.1"):
        registry.register("demand", version, ONNX, CARD)
    assert [v.version for v in registry.versions("demand")] == ["1.2.0", "1.9.0", "1.10.0", "2.0.0-rc.1"]


def test_register_model_publishes_on_gcs(registry) -> None:  # type: ignore[no-untyped-def]
    publisher = RecordingPublisher()
    registered = register_model(registry, publisher, "demand", "1.0.0", ONNX, CARD, promote=True)
    [(topic, data, attributes)] = publisher.messages
    assert topic == "model-events" and attributes["event_type"] == "candidate_registered"
    assert json.loads(data)["uri"] == registered.uri


def test_store_from_url_and_missing_objects(client, bucket: str) -> None:  # type: ignore[no-untyped-def]
    store = create_object_store(f"gs://{bucket}/p", client=client)
    assert isinstance(store, GcsObjectStore)
    assert store.get("nothing") is None and not store.exists("nothing")
    store.put("a/b", b"1")
    store.put("a/b", b"2")
    assert store.get("a/b") == b"2" and store.list() == ["a/b"] and store.list("a/") == ["a/b"]
    assert store.uri("a/b") == f"gs://{bucket}/p/a/b"
