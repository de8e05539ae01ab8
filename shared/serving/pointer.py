"""The live pointer: which slot (blue or green) serves a model, and what each slot holds.

Pure: a frozen ``LivePointer`` and the transitions that make a new one from an old one. The
store (``shared.ports.LivePointerStore``: Firestore, or memory in tests) writes a new pointer
only when the stored generation is still the one the transition started from, so two writers
can never both win.

Fields (stable; ``predict`` reads them):

* ``model``: the model name (one pointer per model).
* ``generation``: 0 for a model that never had a pointer (nothing stored yet); every write
  adds one. The compare-and-swap is on this number.
* ``live_slot``: ``"blue"``, ``"green"``, or ``None`` when nothing is live (serve the fallback).
* ``live_version``: the version in the live slot (``None`` when nothing is live).
* ``previous_version``: the version that was live just before ``live_version`` (history; after
  a rollback it is the version rolled away from), or ``None``.
* ``blue_version`` / ``green_version``: the version loaded in each slot (``None``: empty). The
  idle slot keeps the version replaced by the last flip, so a rollback to it is a flip alone.
* ``retired``: versions a rollback moved away from, oldest first. A rollback never goes back
  to one of them; deploying one explicitly takes it off the list.
* ``updated_at``: when this generation was written (aware UTC), ``None`` for generation 0.
* ``reason``: why this generation was written (``deploy 1.3.0``, the rollback's reason, ...).
* ``request_keys``: idempotency keys of the last requests that changed the pointer (newest
  last, at most ``REQUEST_KEYS_KEPT``), written in the same compare-and-swap as the change, so
  a redelivered deploy or rollback request is recognised and acted on once.

Transitions: ``load_idle_slot`` then ``flip`` (deploy), and ``rollback`` (flip to an older
version, loading it into the idle slot first when it is not already there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from shared.errors import PermanentError

Slot = Literal["blue", "green"]
SLOTS: tuple[Slot, Slot] = ("blue", "green")
REQUEST_KEYS_KEPT = 50


class PointerConflict(PermanentError):
    """Another writer changed the pointer first (its generation is not the one expected)."""

    def __init__(self, model: str, expected_generation: int, found_generation: int | None = None) -> None:
        found = "" if found_generation is None else f", found {found_generation}"
        super().__init__(
            f"live pointer of {model!r} changed while this change was prepared "
            f"(expected generation {expected_generation}{found}); nothing was written"
        )
        self.model = model
        self.expected_generation = expected_generation
        self.found_generation = found_generation


class NothingToRollBackTo(PermanentError):
    """A rollback found no version it may go back to; the pointer is unchanged."""


def other_slot(slot: Slot) -> Slot:
    return "green" if slot == "blue" else "blue"


@dataclass(frozen=True)
class LivePointer:
    """One model's live pointer (see the module docstring for each field's meaning)."""

    model: str
    generation: int = 0
    live_slot: Slot | None = None
    live_version: str | None = None
    previous_version: str | None = None
    blue_version: str | None = None
    green_version: str | None = None
    retired: tuple[str, ...] = ()
    updated_at: datetime | None = None
    reason: str = ""
    request_keys: tuple[str, ...] = ()

    @property
    def is_live(self) -> bool:
        """A version is live (else ``predict`` serves the fallback)."""
        return self.live_slot is not None and self.live_version is not None

    @property
    def idle_slot(self) -> Slot:
        """The slot a deploy loads into: the one not live (blue when nothing is live)."""
        return "blue" if self.live_slot is None else other_slot(self.live_slot)

    def slot_version(self, slot: Slot) -> str | None:
        return self.blue_version if slot == "blue" else self.green_version

    @property
    def idle_version(self) -> str | None:
        return self.slot_version(self.idle_slot)

    # -- storage form (Firestore document, JSON) ----------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "generation": self.generation,
            "live_slot": self.live_slot,
            "live_version": self.live_version,
            "previous_version": self.previous_version,
            "blue_version": self.blue_version,
            "green_version": self.green_version,
            "retired": list(self.retired),
            "updated_at": self.updated_at,
            "reason": self.reason,
            "request_keys": list(self.request_keys),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LivePointer:
        live_slot = data.get("live_slot")
        if live_slot not in (None, "blue", "green"):
            raise PermanentError(f"live pointer of {data.get('model')!r} names an unknown slot {live_slot!r}")
        updated_at = data.get("updated_at")
        if isinstance(updated_at, str):
            updated_at = datetime.fromisoformat(updated_at)
        return cls(
            model=str(data["model"]),
            generation=int(data.get("generation") or 0),
            live_slot=live_slot,
            live_version=data.get("live_version"),
            previous_version=data.get("previous_version"),
            blue_version=data.get("blue_version"),
            green_version=data.get("green_version"),
            retired=tuple(data.get("retired") or ()),
            updated_at=updated_at,
            reason=str(data.get("reason") or ""),
            request_keys=tuple(data.get("request_keys") or ()),
        )


def with_request_key(pointer: LivePointer, key: str) -> LivePointer:
    """``pointer`` remembering ``key`` (the request that produced it); the oldest keys drop out."""
    return replace(pointer, request_keys=(*pointer.request_keys, key)[-REQUEST_KEYS_KEPT:])


def _with_slot(pointer: LivePointer, slot: Slot, version: str | None) -> LivePointer:
    if slot == "blue":
        return replace(pointer, blue_version=version)
    return replace(pointer, green_version=version)


def _next(pointer: LivePointer, at: datetime, reason: str, **changes: Any) -> LivePointer:
    return replace(pointer, generation=pointer.generation + 1, updated_at=at, reason=reason, **changes)


def load_idle_slot(pointer: LivePointer, version: str) -> LivePointer:
    """The pointer with ``version`` in the idle slot; the live slot is untouched.

    The generation does not move: this is a step towards a flip, written together with it.
    """
    if pointer.is_live and pointer.live_version == version:
        raise PermanentError(f"{pointer.model} {version} is already live")
    return _with_slot(pointer, pointer.idle_slot, version)


def flip(pointer: LivePointer, at: datetime, reason: str) -> LivePointer:
    """Make the idle slot live: its version becomes ``live_version``, the old live one
    ``previous_version``. The version flipped to leaves ``retired`` (an explicit deploy of it)."""
    target_slot = pointer.idle_slot
    target = pointer.slot_version(target_slot)
    if target is None:
        raise PermanentError(f"cannot flip {pointer.model}: the idle slot {target_slot} holds no version")
    if pointer.is_live and target == pointer.live_version:
        raise PermanentError(f"cannot flip {pointer.model}: {target} is already live")
    return _next(
        pointer,
        at,
        reason,
        live_slot=target_slot,
        live_version=target,
        previous_version=pointer.live_version,
        retired=tuple(v for v in pointer.retired if v != target),
    )


def deploy(pointer: LivePointer, version: str, at: datetime, reason: str) -> LivePointer:
    """``load_idle_slot`` then ``flip``: ``version`` goes live, the old live version stays loaded
    in the now idle slot for a rollback."""
    return flip(load_idle_slot(pointer, version), at, reason)


def rollback_target(pointer: LivePointer, registered_older: list[str]) -> str | None:
    """Where a rollback goes: the previous version unless it was rolled away from, else the
    newest of ``registered_older`` (registered versions older than the live one, oldest first,
    already limited to those allowed to serve) that was never rolled away from; ``None``: nowhere.
    """
    if not pointer.is_live:
        return None
    forbidden = set(pointer.retired) | {pointer.live_version}
    if pointer.previous_version is not None and pointer.previous_version not in forbidden:
        return pointer.previous_version
    for version in reversed(registered_older):
        if version not in forbidden:
            return version
    return None


def rollback(pointer: LivePointer, target: str | None, at: datetime, reason: str) -> LivePointer:
    """Flip to ``target`` (from ``rollback_target``), loading it into the idle slot unless it
    is already there; the version rolled away from joins ``retired``.

    Raises ``NothingToRollBackTo`` (pointer unchanged) when nothing is live or ``target`` is
    ``None``, and ``PermanentError`` when ``target`` is the live version or a retired one.
    """
    if not pointer.is_live or pointer.live_version is None:
        raise NothingToRollBackTo(f"nothing to roll back: no version of {pointer.model!r} is live")
    if target is None:
        raise NothingToRollBackTo(
            f"nothing to roll back to: {pointer.model} {pointer.live_version} stays live "
            "(no older registered version that was not already rolled away from)"
        )
    if target == pointer.live_version or target in pointer.retired:
        raise PermanentError(f"a rollback of {pointer.model} may not go to {target}: it was rolled away from")
    rolled_away = pointer.live_version
    loaded = pointer if pointer.idle_version == target else _with_slot(pointer, pointer.idle_slot, target)
    flipped = flip(loaded, at, reason)
    return replace(flipped, retired=(*pointer.retired, rolled_away))
