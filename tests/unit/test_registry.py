"""The object-store model registry on a local folder, and registering with its model-events message."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import bootstrap
from shared.adapters.object_store_registry import ObjectStoreRegistry
from shared.adapters.object_stores import GcsObjectStore, LocalObjectStore, check_key, create_object_store
from shared.errors import PermanentError
from shared.registry import (
    VersionExists,
    register_model,
    sort_versions,
    version_key,
    version_label,
)
from shared.settings import Settings
from tests.fakes import RecordingPublisher

ONNX = b"\x08\x07onnx-bytes"
CARD = {"metrics": {"wape": 0.21}, "features": ["units_lag_7"], "window": ["2024-01-01", "2025-06-30"]}


@pytest.fixture
def registry(tmp_path: Path) -> ObjectStoreRegistry:
    return ObjectStoreRegistry(LocalObjectStore(tmp_path / "registry"))


def test_register_writes_the_design_layout_and_get_by_version(registry, tmp_path: Path) -> None:
    registered = registry.register("demand", "1.3.0", ONNX, CARD, aliases=("candidate",))
    folder = tmp_path / "registry" / "demand" / "1.3.0"
    assert (folder / "model.onnx").read_bytes() == ONNX
    assert json.loads((folder / "card.json").read_text()) == CARD
    assert json.loads((tmp_path / "registry" / "demand" / "aliases.json").read_text()) == {
        "candidate": "1.3.0"
    }
    assert registered.uri == folder.resolve().as_uri()
    assert registered.aliases == ("candidate",)
    found = registry.get("demand", "1.3.0")
    assert found == registered
    assert registry.load_onnx(found) == ONNX
    assert registry.get("demand", "9.9.9") is None
    assert registry.get("other", "1.3.0") is None


def test_get_by_alias_and_alias_moves(registry) -> None:
    registry.register("demand", "1.0.0", ONNX, CARD, aliases=("candidate",))
    registry.set_alias("demand", "live", "1.0.0")
    registry.register("demand", "1.1.0", ONNX + b"2", CARD, aliases=("candidate",))
    assert registry.get("demand", "candidate").version == "1.1.0"
    assert registry.get("demand", "live").version == "1.0.0"
    assert registry.get("demand", "1.0.0").aliases == ("live",)  # candidate moved away
    registry.set_alias("demand", "live", "1.1.0")
    assert registry.get("demand", "1.1.0").aliases == ("candidate", "live")
    assert registry.get("demand", "1.0.0").aliases == ()
    assert registry.get("demand", "previous") is None


def test_duplicate_version_is_refused_and_left_unchanged(registry) -> None:
    registry.register("demand", "1.0.0", ONNX, CARD)
    with pytest.raises(VersionExists, match="already registered"):
        registry.register("demand", "1.0.0", b"other", {"x": 1})
    assert registry.load_onnx(registry.get("demand", "1.0.0")) == ONNX


def test_alias_on_a_missing_version_and_bad_names_are_refused(registry) -> None:
    with pytest.raises(PermanentError, match="no such version"):
        registry.set_alias("demand", "live", "2.0.0")
    with pytest.raises(PermanentError, match="semantic version"):
        registry.register("demand", "v1", ONNX, CARD)
    with pytest.raises(PermanentError, match="model name"):
        registry.register("../etc", "1.0.0", ONNX, CARD)
    with pytest.raises(PermanentError, match="alias"):
        registry.register("demand", "1.0.0", ONNX, CARD, aliases=("Bad Alias",))


def test_versions_are_sorted_semantically_not_as_text(registry) -> None:
    for version in ("1.10.0", "1.2.0", "1.9.1", "2.0.0-rc.1", "2.0.0", "0.9.0"):
        registry.register("demand", version, ONNX, CARD)
    assert [v.version for v in registry.versions("demand")] == [
        "0.9.0",
        "1.2.0",
        "1.9.1",
        "1.10.0",
        "2.0.0-rc.1",
        "2.0.0",
    ]
    assert registry.versions("unknown") == []


def test_a_half_written_version_is_invisible_and_can_be_registered(registry, tmp_path: Path) -> None:
    # A crash between model.onnx and card.json: the card is the entry, so nothing is registered.
    folder = tmp_path / "registry" / "demand" / "1.0.0"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"partial")
    assert registry.get("demand", "1.0.0") is None and registry.versions("demand") == []
    registry.register("demand", "1.0.0", ONNX, CARD)
    assert registry.load_onnx(registry.get("demand", "1.0.0")) == ONNX


def test_local_store_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put("a/b.json", b"1")
    store.put("a/b.json", b"22")
    assert store.get("a/b.json") == b"22"
    assert store.list() == ["a/b.json"] and store.list("a/") == ["a/b.json"] and store.list("b/") == []
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.json"]
    assert store.get("missing") is None and not store.exists("missing")
    for bad in ("", "/abs", "a/../b", "a//b"):
        with pytest.raises(PermanentError):
            check_key(bad)
    assert isinstance(create_object_store(f"file://{tmp_path}"), LocalObjectStore)


def test_register_model_publishes_candidate_registered(registry) -> None:
    publisher = RecordingPublisher()
    registered = register_model(registry, publisher, "demand", "1.3.0", ONNX, CARD, promote=True)
    assert registered.aliases == ("candidate",)
    [(topic, data, attributes)] = publisher.messages
    assert topic == "model-events"
    assert attributes == {"event_type": "candidate_registered", "model": "demand", "version": "1.3.0"}
    assert json.loads(data) == {
        "model": "demand",
        "version": "1.3.0",
        "uri": registered.uri,
        "aliases": ["candidate"],
        "decision": "candidate",
    }


def test_register_model_without_promotion_records_a_rejection_and_sets_no_alias(registry) -> None:
    publisher = RecordingPublisher()
    registry.register("demand", "1.0.0", ONNX, CARD, aliases=("candidate",))
    registered = register_model(registry, publisher, "demand", "1.1.0", ONNX, CARD, promote=False)
    assert registered.aliases == ()
    assert registry.get("demand", "candidate").version == "1.0.0"  # untouched
    [(_, data, attributes)] = publisher.messages
    assert attributes["event_type"] == "rejected"
    assert json.loads(data)["decision"] == "rejected" and json.loads(data)["aliases"] == []


def test_register_model_does_not_publish_when_registration_fails(registry) -> None:
    publisher = RecordingPublisher()
    registry.register("demand", "1.0.0", ONNX, CARD)
    with pytest.raises(VersionExists):
        register_model(registry, publisher, "demand", "1.0.0", ONNX, CARD, promote=True)
    assert publisher.messages == []


def test_version_label_fits_gcp_labels() -> None:
    assert version_label("1.3.0") == "1-3-0"
    assert version_label("2.0.0-rc.1") == "2-0-0-rc-1"


semver = st.tuples(
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.sampled_from(["", "-rc.1", "-rc.2", "-alpha"]),
).map(lambda t: f"{t[0]}.{t[1]}.{t[2]}{t[3]}")


@given(st.lists(semver, min_size=2, max_size=8, unique=True))
def test_sorting_orders_by_numbers_then_releases_after_prereleases(versions: list[str]) -> None:
    ordered = sort_versions(versions)
    for lower, higher in itertools.pairwise(ordered):
        lo, hi = version_key(lower), version_key(higher)
        assert lo[:3] <= hi[:3]
        if lo[:3] == hi[:3] and "-" not in higher:
            assert "-" in lower  # a release follows its pre-releases


def test_bootstrap_builds_the_registry_and_backend_from_settings(tmp_path: Path) -> None:
    from shared.adapters.training_backends import LocalProcessBackend, VertexTrainingBackend
    from shared.adapters.vertex_registry import VertexModelRegistry

    local = bootstrap.build_registry(Settings.from_env({"SHOPML_HOME": str(tmp_path)}))
    assert isinstance(local, ObjectStoreRegistry) and local.store.uri("") == (tmp_path / "registry").as_uri()
    on_gcs = bootstrap.build_registry(Settings.from_env({"SHOPML_REGISTRY": "gs://b/models"}))
    assert isinstance(on_gcs, ObjectStoreRegistry) and isinstance(on_gcs.store, GcsObjectStore)
    vertex = bootstrap.build_registry(
        Settings.from_env(
            {"SHOPML_REGISTRY": "vertex://p-1/europe-west1", "SHOPML_VERTEX_STAGING_BUCKET": "gs://b"}
        )
    )
    assert isinstance(vertex, VertexModelRegistry)
    assert isinstance(bootstrap.build_training_backend(Settings.from_env({})), LocalProcessBackend)
    vertex_backend = bootstrap.build_training_backend(
        Settings.from_env({"SHOPML_TRAINING_BACKEND": "vertex"})
    )
    assert isinstance(vertex_backend, VertexTrainingBackend)
