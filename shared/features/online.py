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

Two clients, one contract: ``OnlineFeatures`` (blocking, ``requests``; ``validate_load``'s
push path, the demo) and ``AsyncOnlineFeatures`` (``predict``: the read runs on the event loop,
no worker thread). The async one speaks HTTP/1.1 itself over asyncio streams (keep-alive pool,
``Content-Length`` or chunked answers, TLS for ``https://``): the feature read is the one
network call on ``predict``'s latency path, and on loopback it costs 0.4 ms this way against
1.1 ms with httpcore, 1.6 ms with httpx and 1.4 ms with ``requests`` (plus the thread hop)
(bench/RESULTS.md, Step 4 serving). It ignores proxy variables (the feature server is on
loopback or an internal Cloud Run URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

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

    def cached_headers(self) -> dict[str, str] | None:
        """The header while the kept token is still good, else None (never fetches: safe on an
        event loop; call ``headers`` in a thread then)."""
        with self._lock:
            if self._token is None or self.clock() - self._fetched_at > self.lifetime_s:
                return None
            return {"Authorization": f"Bearer {self._token}"}

    def forget(self) -> None:
        with self._lock:
            self._token = None


READ_PATH = "/get-online-features"


def read_payload(ids: list[int], names: list[str]) -> dict[str, Any]:
    """The body of a read: entity ids, ``view:feature`` references, full names in the answer."""
    return {"entities": {JOIN_KEY: ids}, "features": feature_refs(names), "full_feature_names": True}


def parse_read(body: Any, ids: list[int], names: list[str]) -> dict[int, dict[str, FeatureValue]]:
    """``parse_response``, with an unexpected shape as ``FeatureServerUnavailable``."""
    try:
        return parse_response(body, ids, names)
    except (ValueError, TypeError, AttributeError) as exc:
        raise FeatureServerUnavailable(f"feature server answered an unexpected shape: {exc}") from exc


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
        body = self.post(READ_PATH, read_payload(ids, names), timeout_s)
        return parse_read(body, ids, names)

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


# -- the same reads on the event loop (predict) ----------------------------------------------


class _ConnectionLost(Exception):
    """The connection closed before any byte of the answer arrived (a reused keep-alive
    connection the server had already closed: worth one retry on a fresh connection)."""


@dataclass
class _Answer:
    status: int
    body: bytes
    keep_alive: bool


_MAX_HEAD_BYTES = 64 * 1024


async def _read_answer(reader: asyncio.StreamReader) -> _Answer:
    """One HTTP/1.1 response: the status line, headers, and the body by ``Content-Length``,
    chunked transfer coding, or (neither) up to the close. Interim 1xx answers are skipped."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _ConnectionLost from exc
            raise
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status = int(rest[:3])
        if 100 <= status < 200:
            continue
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        break
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if status in (204, 304):
        return _Answer(status, b"", keep_alive)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, if any
                    pass
                return _Answer(status, b"".join(parts), keep_alive)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is not None:
        return _Answer(status, await reader.readexactly(int(length)), keep_alive)
    return _Answer(status, await reader.read(), False)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # its event loop is gone (a test client's loop)
            self.writer.close()


class AsyncOnlineFeatures:
    """``OnlineFeatures.read`` on the event loop: the same request, answer, failures
    (``FeatureServerUnavailable``) and ID tokens for ``https://`` servers, over a small pool of
    keep-alive HTTP/1.1 connections owned by the running event loop (a new loop, as a test
    client makes, starts a new pool). One read has ``timeout_ms`` in all, connecting included."""

    def __init__(
        self, base_url: str, timeout_ms: float, auth: IdTokenAuth | None = None, max_idle: int = 8
    ) -> None:
        if not base_url:
            raise ValueError("no feature server URL (SHOPML_FEATURE_SERVER_URL)")
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"feature server URL {base_url!r}: expected http:// or https://host[:port]")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.prefix = parts.path
        self.timeout_s = timeout_ms / 1000.0
        self.max_idle = max_idle
        if auth is None and self.tls:
            auth = IdTokenAuth(self.base_url)
        self.auth = auth
        self._ssl: ssl.SSLContext | None = None
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def read(
        self, variant_ids: Iterable[int], features: Iterable[str], timeout_s: float | None = None
    ) -> dict[int, dict[str, FeatureValue]]:
        """Raw values with status and event time (no TTL applied), as ``OnlineFeatures.read``."""
        ids = list(dict.fromkeys(int(v) for v in variant_ids))
        names = list(dict.fromkeys(features))
        if not ids or not names:
            return {vid: {} for vid in ids}
        body = await self.post(READ_PATH, read_payload(ids, names), timeout_s)
        return parse_read(body, ids, names)

    async def post(self, path: str, payload: Mapping[str, Any], timeout_s: float | None = None) -> Any:
        """POST JSON; the decoded answer (None when empty). Failures → ``FeatureServerUnavailable``."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        content = json.dumps(payload, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(timeout):
                answer = await self._exchange(path, content)
                if self.auth is not None and answer.status in (401, 403):
                    self.auth.forget()  # expired or revoked: one fresh token, one retry
                    answer = await self._exchange(path, content)
        except TimeoutError as exc:
            raise FeatureServerUnavailable(f"feature server {path}: no answer in {timeout:.3f} s") from exc
        # IncompleteReadError is an EOFError; a head over the limit a LimitOverrunError
        except (OSError, EOFError, ValueError, asyncio.LimitOverrunError, _ConnectionLost) as exc:
            raise FeatureServerUnavailable(f"feature server {path}: {type(exc).__name__}: {exc}") from exc
        if answer.status >= 300:
            text = answer.body[:200].decode(errors="replace")
            raise FeatureServerUnavailable(f"feature server {path} answered {answer.status}: {text}")
        if not answer.body:
            return None
        try:
            return json.loads(answer.body)
        except ValueError as exc:
            raise FeatureServerUnavailable(f"feature server {path} answered non-JSON") from exc

    async def _exchange(self, path: str, content: bytes) -> _Answer:
        headers = ""
        if self.auth is not None:
            found = self.auth.cached_headers()
            if found is None:
                found = await asyncio.to_thread(self.auth.headers)
            headers = "".join(f"{name}: {value}\r\n" for name, value in found.items())
        request = (
            f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
            f"Content-Length: {len(content)}\r\n{headers}\r\n"
        ).encode("latin-1") + content
        connection, reused = await self._acquire()
        try:
            try:
                answer = await self._send(connection, request)
            except _ConnectionLost:
                connection.close()
                if not reused:
                    raise
                connection, reused = await self._open(), False  # the server closed an idle one
                answer = await self._send(connection, request)
        except BaseException:  # a timeout or a broken answer: this connection is done
            connection.close()
            raise
        if answer.keep_alive and len(self._idle) < self.max_idle:
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    @staticmethod
    async def _send(connection: _Connection, request: bytes) -> _Answer:
        connection.writer.write(request)
        await connection.writer.drain()
        return await _read_answer(connection.reader)

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._drop_idle()
            self._loop = loop
        while self._idle:
            connection = self._idle.pop()
            if connection.usable():
                return connection, True
            connection.close()
        return await self._open(), False

    async def _open(self) -> _Connection:
        if self.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        reader, writer = await asyncio.open_connection(
            self.host,
            self.port,
            ssl=self._ssl if self.tls else None,
            server_hostname=self.host if self.tls else None,
            limit=_MAX_HEAD_BYTES,
        )
        return _Connection(reader, writer)

    def _drop_idle(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def aclose(self) -> None:
        self._drop_idle()


@functools.cache
def async_online_features(base_url: str, timeout_ms: float) -> AsyncOnlineFeatures:
    """One event-loop client per server URL and process (``predict``, built on its first request)."""
    return AsyncOnlineFeatures(base_url, timeout_ms)
