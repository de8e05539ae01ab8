"""``LivePointerStore`` whose reads go over Firestore's REST API: ``predict``'s start path.

Why: importing the Firestore client library (gRPC, protobuf) takes about a second of a cold
start, and ``predict`` only needs to read one document. ``get`` is one HTTP GET of
``<collection>/<model>``::

    GET https://firestore.googleapis.com/v1/projects/P/databases/D/documents/C/MODEL
    GET http://$FIRESTORE_EMULATOR_HOST/v1/projects/P/databases/D/documents/C/MODEL

(the emulator with ``Authorization: Bearer owner``; the cloud with an access token from
google-auth's default credentials, the metadata server on Cloud Run), over urllib3's pool
(kept-alive connections; urllib3 is requests' own transport). The typed JSON values
(``stringValue``, ``integerValue``, ``timestampValue``, ``arrayValue``, ...) are decoded into
the same ``LivePointer`` the transactional adapter (``shared.adapters.firestore_pointer``) reads
from the same document; a missing document (404) is ``LivePointer(model)``.

Writes (``compare_and_swap``) and the snapshot listener (``watch``) need transactions and a
stream: they go to ``FirestorePointerStore``, built (and the client imported) on first use.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from shared.errors import PermanentError, TransientError
from shared.registry import check_model_name
from shared.serving.pointer import LivePointer

CLOUD_ENDPOINT = "https://firestore.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/datastore"
# The emulator's documented admin token (security rules do not apply); not a secret.
EMULATOR_TOKEN = "owner"  # noqa: S105
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def document_url(project: str, database: str, collection: str, document: str, endpoint: str) -> str:
    path = "/".join(quote(part, safe="()") for part in (collection, document))
    return (
        f"{endpoint.rstrip('/')}/v1/projects/{quote(project, safe='')}/databases/"
        f"{quote(database, safe='()')}/documents/{path}"
    )


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 UTC timestamp as Firestore writes it (``Z``, up to nanoseconds) → aware UTC."""
    stamp = text.strip()
    if stamp.endswith("Z"):
        stamp = stamp[:-1] + "+00:00"
    head, sep, tail = stamp.partition(".")
    if sep:  # Python keeps microseconds: cut the fraction to six digits
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        stamp = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.fromisoformat(stamp).astimezone(UTC)


def decode_value(value: Mapping[str, Any]) -> Any:
    """One Firestore REST ``Value`` as Python (what the client library returns for it)."""
    if len(value) != 1:
        raise PermanentError(f"a Firestore value has one type field, got {sorted(value)}")
    [(kind, raw)] = value.items()
    if kind == "nullValue":
        return None
    if kind in ("stringValue", "referenceValue"):
        return str(raw)
    if kind == "booleanValue":
        return bool(raw)
    if kind == "integerValue":
        return int(raw)  # int64 is sent as a string
    if kind == "doubleValue":
        return float(raw)
    if kind == "timestampValue":
        return parse_timestamp(str(raw))
    if kind == "arrayValue":
        return [decode_value(item) for item in (raw or {}).get("values", [])]
    if kind == "mapValue":
        return decode_fields((raw or {}).get("fields", {}))
    raise PermanentError(f"Firestore value type {kind!r} is not used by the live pointer")


def decode_fields(fields: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: decode_value(value) for name, value in fields.items()}


def pointer_from_document(model: str, document: Mapping[str, Any]) -> LivePointer:
    """The ``LivePointer`` a REST document holds (``PermanentError`` when malformed)."""
    try:
        data = decode_fields(document.get("fields", {}))
        return LivePointer.from_dict({**data, "model": data.get("model", model)})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PermanentError(f"the live pointer document of {model!r} is malformed: {exc}") from exc


class FirestoreRestPointerStore:
    """The live pointers in Firestore; reads over REST, writes and the listener via the client."""

    def __init__(
        self,
        project: str,
        database: str = "(default)",
        collection: str = "live_pointers",
        emulator_host: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.project = project
        self.database = database
        self.collection = collection
        self.emulator_host = emulator_host
        self.timeout_seconds = timeout_seconds
        self.endpoint = f"http://{emulator_host}" if emulator_host else CLOUD_ENDPOINT
        self._lock = threading.Lock()
        self._pool: Any = None
        self._credentials: Any = None
        self._auth_request: Any = None
        self._writer: Any = None

    # -- reads (REST) -------------------------------------------------------------------------

    def _http(self) -> Any:
        with self._lock:
            return self._http_unlocked()

    def _authorization(self) -> str:
        if self.emulator_host:
            return f"Bearer {EMULATOR_TOKEN}"
        with self._lock:
            if self._credentials is None:
                import google.auth
                from google.auth.transport.urllib3 import Request as AuthRequest

                self._credentials, _ = google.auth.default(scopes=[SCOPE])
                self._auth_request = AuthRequest(self._http_unlocked())
            if not self._credentials.valid:  # expired or never fetched: one refresh, under the lock
                self._credentials.refresh(self._auth_request)
            return f"Bearer {self._credentials.token}"

    def _http_unlocked(self) -> Any:
        """urllib3's pool (thread-safe, kept-alive connections), made once; callers hold the lock."""
        if self._pool is None:
            import urllib3

            self._pool = urllib3.PoolManager(maxsize=4, retries=False)
        return self._pool

    def get(self, model: str) -> LivePointer:
        url = document_url(
            self.project, self.database, self.collection, check_model_name(model), self.endpoint
        )
        what = f"read of the live pointer of {model!r}"
        try:
            http = self._http()
            headers = {"Authorization": self._authorization(), "Accept": "application/json"}
            answer = http.request("GET", url, headers=headers, timeout=self.timeout_seconds)
        except PermanentError:
            raise
        except Exception as exc:  # connection refused, timeout, DNS, token refresh: all retryable
            raise TransientError(
                f"Firestore {what} failed, retry later: {type(exc).__name__}: {exc}"
            ) from exc
        if answer.status == 404:
            return LivePointer(model)
        if answer.status in _TRANSIENT_STATUS:
            raise TransientError(f"Firestore {what} failed, retry later: HTTP {answer.status}")
        if answer.status != 200:
            raise PermanentError(f"Firestore {what} failed: HTTP {answer.status} {answer.data[:300]!r}")
        try:
            document = json.loads(answer.data)
        except ValueError as exc:
            raise PermanentError(f"Firestore {what}: the answer is not JSON") from exc
        return pointer_from_document(model, document)

    # -- writes and the listener (the client library, on first use) ---------------------------

    def _client_store(self) -> Any:
        with self._lock:
            if self._writer is None:
                from shared.adapters.firestore_pointer import FirestorePointerStore

                self._writer = FirestorePointerStore(
                    self.project, self.database, self.collection, self.emulator_host, self.timeout_seconds
                )
            return self._writer

    def compare_and_swap(self, model: str, expected_generation: int, new: LivePointer) -> bool:
        return bool(self._client_store().compare_and_swap(model, expected_generation, new))

    def watch(self, model: str, callback: Callable[[LivePointer], None]) -> Callable[[], None]:
        stop: Callable[[], None] = self._client_store().watch(model, callback)
        return stop
