"""The live pointer's pure transitions: deploy flips slots, rollback never returns to what it left."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.errors import PermanentError
from shared.serving.pointer import (
    REQUEST_KEYS_KEPT,
    LivePointer,
    NothingToRollBackTo,
    deploy,
    flip,
    load_idle_slot,
    rollback,
    rollback_target,
    with_request_key,
)

AT = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)


def test_a_new_pointer_serves_nothing_and_deploys_into_blue() -> None:
    empty = LivePointer("demand")
    assert not empty.is_live and empty.generation == 0 and empty.idle_slot == "blue"
    first = deploy(empty, "1.0.0", AT, "deploy 1.0.0")
    assert (first.live_slot, first.live_version, first.previous_version) == ("blue", "1.0.0", None)
    assert first.generation == 1 and first.updated_at == AT and first.reason == "deploy 1.0.0"


def test_deploy_loads_the_idle_slot_and_keeps_the_old_version_loaded_for_rollback() -> None:
    second = deploy(deploy(LivePointer("demand"), "1.0.0", AT, "d"), "1.1.0", AT, "d")
    assert (second.live_slot, second.live_version, second.previous_version) == ("green", "1.1.0", "1.0.0")
    assert (second.blue_version, second.green_version) == ("1.0.0", "1.1.0")
    assert second.idle_slot == "blue" and second.idle_version == "1.0.0"
    assert second.generation == 2


def test_loading_the_idle_slot_leaves_live_slot_and_generation_alone() -> None:
    first = deploy(LivePointer("demand"), "1.0.0", AT, "d")
    loaded = load_idle_slot(first, "1.1.0")
    assert loaded.live_version == "1.0.0" and loaded.live_slot == "blue"
    assert loaded.green_version == "1.1.0" and loaded.generation == first.generation


def test_deploying_the_live_version_again_is_refused() -> None:
    first = deploy(LivePointer("demand"), "1.0.0", AT, "d")
    with pytest.raises(PermanentError, match="already live"):
        deploy(first, "1.0.0", AT, "d")


def test_flip_with_an_empty_idle_slot_is_refused() -> None:
    with pytest.raises(PermanentError, match="holds no version"):
        flip(LivePointer("demand"), AT, "d")


def test_first_rollback_flips_back_to_the_previous_slot_without_loading() -> None:
    live = deploy(deploy(LivePointer("demand"), "1.0.0", AT, "d"), "1.1.0", AT, "d")
    target = rollback_target(live, ["1.0.0"])
    assert target == "1.0.0"
    back = rollback(live, target, AT, "bad forecasts")
    assert (back.live_slot, back.live_version, back.previous_version) == ("blue", "1.0.0", "1.1.0")
    assert (back.blue_version, back.green_version) == ("1.0.0", "1.1.0")
    assert back.retired == ("1.1.0",) and back.reason == "bad forecasts"
    assert back.generation == live.generation + 1


def test_second_rollback_loads_the_next_older_version_never_the_one_rolled_away_from() -> None:
    live = LivePointer("demand")
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        live = deploy(live, version, AT, "d")
    once = rollback(live, rollback_target(live, ["1.0.0", "1.1.0"]), AT, "r1")
    assert once.live_version == "1.1.0"
    # previous_version is 1.2.0, which was rolled away from: the next older registered one wins.
    target = rollback_target(once, ["1.0.0"])
    assert target == "1.0.0"
    twice = rollback(once, target, AT, "r2")
    assert twice.live_version == "1.0.0" and twice.live_slot == once.idle_slot
    assert twice.slot_version(twice.live_slot or "blue") == "1.0.0"
    assert twice.retired == ("1.2.0", "1.1.0")


def test_rollback_with_no_older_version_changes_nothing_and_says_so() -> None:
    live = deploy(deploy(LivePointer("demand"), "1.0.0", AT, "d"), "1.1.0", AT, "d")
    once = rollback(live, rollback_target(live, ["1.0.0"]), AT, "r1")
    assert rollback_target(once, []) is None
    with pytest.raises(NothingToRollBackTo, match=r"1\.0\.0 stays live"):
        rollback(once, None, AT, "r2")


def test_rollback_with_nothing_live_is_refused() -> None:
    with pytest.raises(NothingToRollBackTo, match="no version"):
        rollback(LivePointer("demand"), "1.0.0", AT, "r")
    assert rollback_target(LivePointer("demand"), ["1.0.0"]) is None


def test_rollback_to_a_retired_version_is_refused() -> None:
    live = deploy(deploy(LivePointer("demand"), "1.0.0", AT, "d"), "1.1.0", AT, "d")
    once = rollback(live, "1.0.0", AT, "r1")
    with pytest.raises(PermanentError, match="rolled away from"):
        rollback(once, "1.1.0", AT, "r2")


def test_deploying_a_retired_version_explicitly_takes_it_off_the_list() -> None:
    live = deploy(deploy(LivePointer("demand"), "1.0.0", AT, "d"), "1.1.0", AT, "d")
    once = rollback(live, "1.0.0", AT, "r1")
    again = deploy(once, "1.1.0", AT, "redeploy")
    assert again.live_version == "1.1.0" and again.retired == ()


def test_the_storage_form_round_trips() -> None:
    live = rollback(
        deploy(deploy(LivePointer("demand"), "1.0.0", AT, "d"), "1.1.0", AT, "d"), "1.0.0", AT, "r"
    )
    assert LivePointer.from_dict(live.to_dict()) == live
    as_json = {**live.to_dict(), "updated_at": AT.isoformat()}
    assert LivePointer.from_dict(as_json) == live
    with pytest.raises(PermanentError, match="unknown slot"):
        LivePointer.from_dict({**live.to_dict(), "live_slot": "red"})


def test_request_keys_are_remembered_up_to_a_bound_newest_last() -> None:
    pointer = LivePointer("demand")
    for number in range(REQUEST_KEYS_KEPT + 5):
        pointer = with_request_key(pointer, f"key-{number}")
    assert len(pointer.request_keys) == REQUEST_KEYS_KEPT
    assert pointer.request_keys[-1] == f"key-{REQUEST_KEYS_KEPT + 4}" and "key-0" not in pointer.request_keys
    assert LivePointer.from_dict(pointer.to_dict()).request_keys == pointer.request_keys
