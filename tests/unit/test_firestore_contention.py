"""The Firestore pointer's answer to contention: a transaction that writers kept aborting is
run again after a jittered pause, and contention that outlasts every round is transient."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as gexc

from shared.adapters.firestore_pointer import _contended, _translate, retry_contended
from shared.errors import PermanentError, TransientError


def exhausted() -> ValueError:
    """What the client library raises when its own attempts all aborted."""
    try:
        raise ValueError("Failed to commit transaction in 5 attempts.") from gexc.Aborted("contention")
    except ValueError as exc:
        return exc


def test_contention_is_retried_after_growing_jittered_pauses_until_the_run_answers() -> None:
    outcomes: list[Exception | bool] = [exhausted(), gexc.Aborted("again"), exhausted(), False]
    pauses: list[float] = []

    def run() -> bool:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry_contended(run, _contended, sleep=pauses.append, jitter=lambda: 1.0) is False
    assert pauses == [0.1, 0.2, 0.4]  # 50 ms · 2**n, full jitter at its top
    assert outcomes == []


def test_pauses_are_capped_and_contention_in_the_last_round_is_raised_as_transient() -> None:
    pauses: list[float] = []

    def run() -> bool:
        raise exhausted()

    with pytest.raises(ValueError) as raised:
        retry_contended(run, _contended, rounds=8, sleep=pauses.append, jitter=lambda: 1.0)
    assert len(pauses) == 7 and max(pauses) == 2.0
    assert isinstance(_translate(raised.value, "compare-and-swap"), TransientError)


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def run() -> bool:
        calls.append(1)
        raise gexc.PermissionDenied("no role")

    with pytest.raises(gexc.PermissionDenied) as raised:
        retry_contended(run, _contended, sleep=lambda _: None)
    assert calls == [1]
    assert isinstance(_translate(raised.value, "compare-and-swap"), PermanentError)
    assert not _contended(ValueError("a bad pointer"))
