"""Online feature reads over HTTP from Feast's feature server, with the TTL Feast does not enforce.

Request path (``predict``): no Feast import (5–6 s), plain ``requests`` on one keep-alive
session, a short timeout from ``settings.feature_timeout_ms``. Any failure — refused, timed
out, a 4xx/5xx (also 404 while nothing is applied yet), a body that is not the expected
shape — raises ``FeatureServerUnavailable`` (a ``TransientError``): the caller falls back.

``POST /get-online-features`` with ``{"entities": {"variant_id": [...]}, "features":
["view:feature", ...], "full_feature_names": true}`` answers (feast 0.67, checked against a
running server; tests/unit/test_online_features.py keeps a copy)::

    {"metadata": {"feature_names": ["variant_id", "variant_state__price", ...]},
     "results": [{"values": [...], "statuses": ["PRESENT", "NOT_FOUND", ...],
                  "event_timestamps": ["2026-11-29T00:00:00Z", "1970-01-01T00:00:00Z", ...]}, ...]}

One result per name in ``metadata.feature_names`` (the entity column first; features in the
server's order, not the request's), one entry per requested entity in request order. Statuses
are ``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``, ``INVALID``; a stored null
comes back ``PRESENT`` with value ``null``; non-finite floats as the strings ``"NaN"``,
``"Infinity"``; event times RFC 3339 with 0, 3, 6 or 9 fractional digits (SQLite keeps
whole seconds). A row older than its view's TTL still comes back ``PRESENT``
(feast-dev/feast#1802): ``fresh_value`` is where shopml applies the TTL.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import TransientError
from shared.features.views import JOIN_KEY, STRING_FEATURES, view_of
from shared.times import parse_timestamp

PRESENT = "PRESENT"
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})


class FeatureServerUnavailable(TransientError):
    """The feature server did not answer usefully in time; serve the fallback instead."""


@dataclass(frozen=True)
class FeatureValue:
    """One feature of one entity as the server reported it (before the TTL rule)."""

    value: Any
    status: str
    event_time: datetime | None  # None when the server sent the epoch (nothing stored)


def feature_event_time(text: str) -> datetime | None:
    """A value's event time from the server; the epoch (what Feast sends for "none") and an
    unreadable stamp are None (no time: the TTL rule then treats the value as missing)."""
    moment = parse_timestamp(text)
    return None if moment is None or moment.timestamp() == 0 else moment


def fresh_value(found: FeatureValue | None, ttl: timedelta, now: datetime, *, numeric: bool = True) -> Any:
    """The TTL rule: the value if it is ``PRESENT``, not null and no older than ``ttl`` at
    ``now``; otherwise None (missing). A value stamped in the future counts as fresh. For a
    ``numeric`` feature, NaN/Infinity (sent as strings) are missing too."""
    if found is None or found.status != PRESENT or found.value is None or found.event_time is None:
        return None
    if now - found.event_time > ttl:
        return None
    if numeric and isinstance(found.value, str) and found.value in _NON_FINITE:
        return None
    if isinstance(found.value, float) and not math.isfinite(found.value):
        return None
    return found.value


def _split_name(full_name: str) -> tuple[str, str]:
    view, sep, feature = full_name.partition("__")
    if not sep:
        view, sep, feature = full_name.partition(":")
    return view, feature


def parse_response(
    body: Any, variant_ids: Sequence[int], features: Iterable[str]
) -> dict[int, dict[str, FeatureValue]]:
    """The server's answer as ``{variant_id: {feature: FeatureValue}}`` for the asked features.

    Raises ``ValueError`` when the body is not the documented shape (wrong lengths, a feature
    missing, entity ids out of order), so a server change is loud rather than misread.
    """
    wanted = {view_of(feature).name + "__" + feature: feature for feature in features}
    if not isinstance(body, Mapping):
        raise ValueError("response is not a JSON object")
    names = (body.get("metadata") or {}).get("feature_names")
    results = body.get("results")
    if not isinstance(names, list) or not isinstance(results, list) or len(names) != len(results):
        raise ValueError("response lacks metadata.feature_names / results of equal length")
    n = len(variant_ids)
    out: dict[int, dict[str, FeatureValue]] = {vid: {} for vid in variant_ids}
    seen: set[str] = set()
    for name, result in zip(names, results, strict=True):
        values, statuses = result.get("values"), result.get("statuses")
        stamps = result.get("event_timestamps") or ["1970-01-01T00:00:00Z"] * n
        if not (isinstance(values, list) and isinstance(statuses, list)):
            raise ValueError(f"result for {name!r} lacks values/statuses")
        if not len(values) == len(statuses) == len(stamps) == n:
            raise ValueError(f"result for {name!r} has {len(values)} values for {n} entities")
        if name == JOIN_KEY:
            if [int(v) for v in values] != [int(v) for v in variant_ids]:
                raise ValueError("entity column does not match the requested variant ids")
            continue
        view, feature = _split_name(name)
        full = f"{view}__{feature}"
        if full not in wanted:
            continue
        seen.add(full)
        for vid, value, status, stamp in zip(variant_ids, values, statuses, stamps, strict=True):
            out[vid][feature] = FeatureValue(value, str(status), feature_event_time(str(stamp)))
    missing = sorted(set(wanted) - seen)
    if missing:
        raise ValueError(f"response lacks features {missing}")
    return out


def apply_ttl(found: Mapping[int, Mapping[str, FeatureValue]], now: datetime) -> dict[int, dict[str, Any]]:
    """``parse_response`` output after the TTL rule: each value, or None when stale/missing."""
    return {
        vid: {
            feature: fresh_value(fv, view_of(feature).ttl, now, numeric=feature not in STRING_FEATURES)
            for feature, fv in row.items()
        }
        for vid, row in found.items()
    }


def feature_refs(features: Iterable[str]) -> list[str]:
    """``view:feature`` references for plain feature names (each lives in one view)."""
    return [f"{view_of(feature).name}:{feature}" for feature in features]


def metadata_id_token(audience: str) -> str:
    """A Google-signed ID token for ``audience`` (the metadata server in the cloud, or the
    local application-default credentials); what Cloud Run's IAM check wants."""
    import google.auth.transport.requests
    import google.oauth2.id_token

    token: str = google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
    return token


class IdTokenAuth:
    """``Authorization: Bearer <ID token>`` for the feature server on Cloud Run (IAM-protected,
    internal ingress). Tokens last an hour: one is kept for ``lifetime_s`` and fetched again
    after, or at once after a 401/403. Plain ``http://`` URLs (the local stack) get no header."""

    def __init__(
        self,
        audience: str,
        fetch: Callable[[str], str] = metadata_id_token,
        lifetime_s: float = 50 * 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audience = audience
        self.fetch = fetch
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._token: str | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self.clock() - self._fetched_at > self.lifetime_s:
                try:
                    self._token = self.fetch(self.audience)
                except Exception as exc:  # no credentials, metadata server unreachable
                    raise FeatureServerUnavailable(f"no ID token for the feature server: {exc}") from exc
                self._fetched_at = self.clock()
            return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        with self._lock:
            self._token = None


class OnlineFeatures:
    """Reads the online store through the feature server. Safe to share between threads
    (requests' connection pool is; the session holds no per-request state we use)."""

    def __init__(
        self, base_url: str, timeout_ms: float, session: Any = None, auth: IdTokenAuth | None = None
    ) -> None:
        if not base_url:
            raise ValueError("no feature server URL (SHOPML_FEATURE_SERVER_URL)")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_ms / 1000.0
        self._session = session
        self._lock = threading.Lock()
        if auth is None and self.base_url.startswith("https://"):
            auth = IdTokenAuth(self.base_url)
        self.auth = auth

    @property
    def session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    import requests
                    from requests.adapters import HTTPAdapter

                    session = requests.Session()
                    session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=16))
                    session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=16))
                    self._session = session
        return self._session

    def post(self, path: str, payload: Mapping[str, Any], timeout_s: float | None = None) -> Any:
        """POST JSON; the decoded answer (None when empty). Failures → ``FeatureServerUnavailable``."""
        import requests

        timeout = self.timeout_s if timeout_s is None else timeout_s
        for attempt in (1, 2):
            headers = self.auth.headers() if self.auth is not None else None
            try:
                response = self.session.post(
                    f"{self.base_url}{path}", json=payload, timeout=timeout, headers=headers
                )
            except requests.RequestException as exc:
                raise FeatureServerUnavailable(f"feature server {path}: {type(exc).__name__}: {exc}") from exc
            if self.auth is None or response.status_code not in (401, 403) or attempt == 2:
                break
            self.auth.forget()  # expired or revoked: one fresh token, one retry
        if response.status_code >= 300:
            raise FeatureServerUnavailable(
                f"feature server {path} answered {response.status_code}: {response.text[:200]}"
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise FeatureServerUnavailable(f"feature server {path} answered non-JSON") from exc

    def read(
        self, variant_ids: Iterable[int], features: Iterable[str], timeout_s: float | None = None
    ) -> dict[int, dict[str, FeatureValue]]:
        """Raw values with status and event time (no TTL applied); for ``push_state``."""
        ids = list(dict.fromkeys(int(v) for v in variant_ids))
        names = list(dict.fromkeys(features))
        if not ids or not names:
            return {vid: {} for vid in ids}
        body = self.post(
            "/get-online-features",
            {"entities": {JOIN_KEY: ids}, "features": feature_refs(names), "full_feature_names": True},
            timeout_s,
        )
        try:
            return parse_response(body, ids, names)
        except (ValueError, TypeError, AttributeError) as exc:
            raise FeatureServerUnavailable(f"feature server answered an unexpected shape: {exc}") from exc

    def get(
        self, variant_ids: Iterable[int], features: Iterable[str], now: datetime | None = None
    ) -> dict[int, dict[str, Any]]:
        """``{variant_id: {feature: value or None}}``: None when missing or older than the
        feature's view TTL (``shared.features.views``). Raises ``FeatureServerUnavailable``."""
        found = self.read(variant_ids, features)
        return apply_ttl(found, now or datetime.now(UTC))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


@functools.cache
def online_features(base_url: str, timeout_ms: float) -> OnlineFeatures:
    """One client per server URL and process (functions call this lazily, never at import)."""
    return OnlineFeatures(base_url, timeout_ms)
