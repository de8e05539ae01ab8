"""Fixtures for the function tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.functions.predict_support import close_clients


@pytest.fixture(autouse=True)
def _close_predict_clients() -> Iterator[None]:
    yield
    close_clients()
