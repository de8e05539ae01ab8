"""The Shopify Admin API client: GraphQL only, on ``shopifyapi``'s session and GraphQL.

What the library gives and what is added here (shopifyapi 12.7, read in its source):

* ``shopify.Session(shop, version, token)`` builds the versioned address
  (``https://<shop>.myshopify.com/admin/api/<version>``); it is used as is. The session is
  *not* activated (``ShopifyResource.activate_session`` is process-wide state shared by
  threads and shops): the token goes into this client's own headers.
* ``shopify.GraphQL.execute`` calls ``urlopen`` with no timeout, prints the body of an HTTP
  error and raises. ``_TimedGraphQL`` subclasses it and overrides ``execute`` to pass
  ``timeout=`` to ``urlopen`` (a deadline for connecting and for each read of the socket) and
  return the status, headers and body instead of printing; its request is built as the
  library builds it (``merge_headers`` of JSON headers and the session's).
* Retries with exponential backoff and full jitter on 429 (honouring ``Retry-After``), 5xx,
  timeouts and connection errors, and ``THROTTLED`` answers (waiting what the bucket needs:
  ``(requested - currentlyAvailable) / restoreRate``), up to ``shopify_max_retries``.
* Cost-aware pacing: every answer's ``extensions.cost.throttleStatus`` is remembered; before
  the next call the pacer projects the bucket (``currentlyAvailable`` + elapsed x
  ``restoreRate``, capped at ``maximumAvailable``) and, if the query's expected cost (what the
  same query text requested last time, or the caller's estimate) would not fit, sleeps until
  it does, so the client waits before Shopify throttles it, not after.
* A hard ceiling of calls per minute (``shopify_max_calls_per_minute``, 1,000 by default),
  shared by every client of the process (a sliding 60-second window).
* Cursor pagination (``paginate``) and streamed bulk downloads (``stream_lines``).

Access tokens come from ``token_for``: the local setting ``SHOPML_SHOPIFY_ACCESS_TOKENS``, or
Secret Manager (``SHOPML_SHOPIFY_TOKEN_SECRET``). A token is never logged, never put in an
error message and not in the client's ``repr``.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import shopify

from shared.errors import ConfigurationError, PermanentError, TransientError
from shared.settings import Settings

MAX_BACKOFF_S = 30.0


class AdminApiError(PermanentError):
    """The Admin API refused a request for a reason retrying cannot fix (bad query, no access)."""

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)

    @property
    def codes(self) -> set[str]:
        return {str((e.get("extensions") or {}).get("code")) for e in self.errors}


class AdminApiUnavailable(TransientError):
    """The Admin API kept failing (429, 5xx, THROTTLED, timeouts) through every retry."""


@dataclass
class CallStats:
    """What one client spent: for the benchmark and the logs."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0
    requested_points: int = 0
    actual_points: int = 0
    paced_seconds: float = 0.0
    ceiling_seconds: float = 0.0


class CallCeiling:
    """At most ``per_minute`` calls in any 60 seconds (a sliding window), across threads."""

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_minute <= 0:
            raise ConfigurationError("SHOPML_SHOPIFY_MAX_CALLS_PER_MINUTE must be greater than zero")
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._calls: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until one more call fits; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._calls and self._calls[0] <= now - 60.0:
                    self._calls.popleft()
                if len(self._calls) < self.per_minute:
                    self._calls.append(now)
                    return waited
                delay = self._calls[0] + 60.0 - now
            self._sleep(delay)
            waited += delay


class CostPacer:
    """Projects Shopify's leaky bucket from the last ``throttleStatus`` and waits before a call
    whose expected cost would not fit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._status: tuple[float, float, float, float] | None = None  # at, available, max, rate
        self._lock = threading.Lock()

    def observe(self, throttle_status: Mapping[str, Any] | None, spent: float = 0.0) -> None:
        if not throttle_status:
            return
        with self._lock:
            self._status = (
                self._clock(),
                float(throttle_status["currentlyAvailable"]),
                float(throttle_status["maximumAvailable"]),
                float(throttle_status["restoreRate"]),
            )

    def projected(self) -> float | None:
        with self._lock:
            if self._status is None:
                return None
            at, available, maximum, rate = self._status
            return min(maximum, available + (self._clock() - at) * rate)

    def delay_for(self, cost: float) -> float:
        """Seconds to wait so that ``cost`` points fit the projected bucket (0 if they do)."""
        with self._lock:
            if self._status is None or cost <= 0:
                return 0.0
            at, available, maximum, rate = self._status
            now_available = min(maximum, available + (self._clock() - at) * rate)
            need = min(cost, maximum) - now_available
            return 0.0 if need <= 0 or rate <= 0 else need / rate

    def spend(self, cost: float) -> None:
        """Take ``cost`` from the projection at once (the answer will correct it)."""
        with self._lock:
            if self._status is not None:
                at, available, maximum, rate = self._status
                now = self._clock()
                self._status = (now, min(maximum, available + (now - at) * rate) - cost, maximum, rate)


class _TimedGraphQL(shopify.GraphQL):
    """``shopify.GraphQL`` with a timeout and no printing; answers (status, headers, body)."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout: float) -> None:
        # Not super().__init__(): that reads the process-wide active session.
        self.endpoint = endpoint
        self.headers = dict(headers)
        self.timeout = timeout

    def execute(
        self, query: str, variables: Mapping[str, Any] | None = None, operation_name: str | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        default_headers = {"Accept": "application/json", "Content-Type": "application/json"}
        headers = self.merge_headers(default_headers, self.headers)
        data = {"query": query, "variables": variables, "operationName": operation_name}
        request = urllib.request.Request(self.endpoint, json.dumps(data).encode("utf-8"), headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers or {}), error.read() or b""


def graphql_endpoint(session: Any, admin_url: str = "") -> str:
    """The session's ``.../admin/api/<version>/graphql.json``; ``admin_url`` replaces the origin
    (``https://<shop>``), e.g. with the local stand-in's ``http://127.0.0.1:PORT``."""
    site = str(session.site)
    if admin_url:
        path = urllib.parse.urlsplit(site).path
        site = admin_url.rstrip("/") + path
    return site + "/graphql.json"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(float(value), 0.0)
            except ValueError:
                return None
    return None


@dataclass
class ShopifyAdmin:
    """One shop's Admin API: ``execute`` a GraphQL document, ``paginate`` a connection."""

    shop: str
    token: str = field(repr=False)
    api_version: str = "2025-10"
    admin_url: str = ""
    timeout: float = 10.0
    max_retries: int = 5
    ceiling: CallCeiling | None = None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    stats: CallStats = field(default_factory=CallStats)

    def __post_init__(self) -> None:
        if not self.shop.endswith(".myshopify.com"):
            raise ConfigurationError(f"shop {self.shop!r} must be a *.myshopify.com domain")
        self.session = shopify.Session(self.shop, self.api_version, self.token)
        self.endpoint = graphql_endpoint(self.session, self.admin_url)
        if not self.endpoint.startswith(("https://", "http://")):
            raise ConfigurationError(f"SHOPML_SHOPIFY_ADMIN_URL={self.admin_url!r} must be an http(s) URL")
        self._graphql = _TimedGraphQL(self.endpoint, {"X-Shopify-Access-Token": self.token}, self.timeout)
        self.pacer = CostPacer(self.clock)
        self._expected: dict[str, int] = {}

    # -- one call ----------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(MAX_BACKOFF_S, 0.5 * 2**attempt))

    def _wait(self, seconds: float, kind: str) -> None:
        if seconds > 0:
            if kind == "pace":
                self.stats.paced_seconds += seconds
            self.sleep(seconds)

    def execute(
        self, query: str, variables: Mapping[str, Any] | None = None, *, expected_cost: int | None = None
    ) -> dict[str, Any]:
        """Run one document; its ``data``. Raises ``AdminApiError`` or ``AdminApiUnavailable``."""
        expected = expected_cost if expected_cost is not None else self._expected.get(query, 0)
        problem = "no attempt made"
        for attempt in range(self.max_retries + 1):
            self._wait(self.pacer.delay_for(expected), "pace")
            if self.ceiling is not None:
                self.stats.ceiling_seconds += self.ceiling.acquire()
            self.pacer.spend(expected)
            self.stats.calls += 1
            try:
                status, headers, body = self._graphql.execute(query, dict(variables or {}))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                problem = f"no answer from {self.shop} within {self.timeout:g} s ({type(reason).__name__})"
                self._retry(attempt, self._backoff(attempt))
                continue
            if status == 429 or status >= 500:
                problem = f"HTTP {status} from {self.shop}"
                wait = _retry_after(headers)
                self._retry(attempt, max(wait or 0.0, self._backoff(attempt)))
                continue
            if status in (401, 403):
                raise AdminApiError(
                    f"HTTP {status} from {self.shop}: the access token is not valid for this shop or "
                    "lacks a scope (check SHOPML_SHOPIFY_ACCESS_TOKENS or the shop's secret)"
                )
            if status != 200:
                raise AdminApiError(f"HTTP {status} from {self.shop}: {body[:200].decode(errors='replace')}")
            try:
                answer = json.loads(body)
            except ValueError:
                problem = f"unreadable answer from {self.shop}"
                self._retry(attempt, self._backoff(attempt))
                continue
            cost = (answer.get("extensions") or {}).get("cost") or {}
            self.pacer.observe(cost.get("throttleStatus"))
            requested = cost.get("requestedQueryCost")
            if isinstance(requested, int):
                self._expected[query] = requested
            errors = answer.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                self.stats.throttled += 1
                problem = f"THROTTLED by {self.shop}"
                status_now = cost.get("throttleStatus") or {}
                need = float(requested or expected or 0) - float(status_now.get("currentlyAvailable", 0))
                rate = float(status_now.get("restoreRate") or 50)
                self._retry(attempt, max(need / rate, 0.0) + self._backoff(0))
                continue
            self.stats.requested_points += int(requested or 0)
            self.stats.actual_points += int(cost.get("actualQueryCost") or 0)
            if errors:
                first = errors[0].get("message", "error")
                raise AdminApiError(f"Admin API error from {self.shop}: {first}", errors)
            data = answer.get("data")
            if not isinstance(data, dict):
                raise AdminApiError(f"Admin API answer from {self.shop} has no data")
            return data
        raise AdminApiUnavailable(f"{problem}; gave up after {self.max_retries + 1} attempts")

    def _retry(self, attempt: int, wait: float) -> None:
        if attempt < self.max_retries:
            self.stats.retries += 1
            self.sleep(wait)

    # -- many calls --------------------------------------------------------------------------
    def paginate(
        self,
        query: str,
        variables: Mapping[str, Any] | None,
        path: Sequence[str],
        *,
        cursor_variable: str = "after",
    ) -> Iterator[dict[str, Any]]:
        """Every node of the connection at ``path`` in ``data``, page by page (``pageInfo``)."""
        values = dict(variables or {})
        while True:
            data: Any = self.execute(query, values)
            for key in path:
                data = (data or {}).get(key)
            if data is None:
                return
            nodes = data.get("nodes")
            if nodes is None:
                nodes = [edge["node"] for edge in data.get("edges") or []]
            yield from nodes
            info = data.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            values[cursor_variable] = info["endCursor"]

    def stream_lines(self, url: str, *, skip_bytes: int = 0) -> Iterator[tuple[int, bytes]]:
        """A bulk result's lines, streamed: (offset after the line, line). ``skip_bytes`` resumes
        (an HTTP Range request; a server that ignores it is skipped through)."""
        if not url.startswith(("https://", "http://")):
            raise AdminApiError(f"bulk result URL is not http(s): {url[:60]!r}")
        headers = {"Range": f"bytes={skip_bytes}-"} if skip_bytes else {}
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only, checked above
        for attempt in range(self.max_retries + 1):
            try:
                response = urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310
                break
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                if attempt >= self.max_retries:
                    raise AdminApiUnavailable(f"bulk result download failed: {type(exc).__name__}") from exc
                self._retry(attempt, self._backoff(attempt))
        with response:
            offset = skip_bytes if response.status == 206 else 0
            for line in response:
                offset += len(line)
                if offset <= skip_bytes:
                    continue
                yield offset, line


# --- construction from settings -----------------------------------------------------------------

_ceilings: dict[int, CallCeiling] = {}
_ceilings_lock = threading.Lock()


def process_ceiling(per_minute: int) -> CallCeiling:
    """The process-wide ceiling for this limit (one window shared by every client)."""
    with _ceilings_lock:
        if per_minute not in _ceilings:
            _ceilings[per_minute] = CallCeiling(per_minute)
        return _ceilings[per_minute]


def secret_id(template: str, shop: str) -> str:
    """``shopify-token-{shop}`` → ``shopify-token-my-store-myshopify-com`` (Secret Manager ids
    allow letters, digits, ``-`` and ``_``)."""
    return template.replace("{shop}", shop.lower().replace(".", "-"))


def token_for(shop: str, settings: Settings, secret_reader: Callable[[str], str] | None = None) -> str:
    """The shop's access token: the local setting, else its Secret Manager secret."""
    for domain, token in settings.shopify_access_tokens:
        if domain == shop.lower():
            return token
    if settings.shopify_token_secret:
        name = (
            f"projects/{settings.project}/secrets/"
            f"{secret_id(settings.shopify_token_secret, shop)}/versions/latest"
        )
        if secret_reader is not None:
            return secret_reader(name)
        return _read_secret(name, settings.shopify_timeout_seconds)
    raise ConfigurationError(
        f"no Admin API access token for {shop}: set SHOPML_SHOPIFY_ACCESS_TOKENS (shop=token, local) "
        "or SHOPML_SHOPIFY_TOKEN_SECRET (a Secret Manager secret per shop)"
    )


def _read_secret(name: str, timeout: float) -> str:
    try:
        from google.cloud import secretmanager
    except ImportError as exc:  # pragma: no cover - the package is pinned
        raise ConfigurationError("google-cloud-secret-manager is needed to read access tokens") from exc
    try:
        client = secretmanager.SecretManagerServiceClient()
        payload = client.access_secret_version(name=name, timeout=timeout).payload.data
    except Exception as exc:  # the message names the secret, never its value
        raise TransientError(
            f"cannot read secret {name.split('/versions/')[0]}: {type(exc).__name__}"
        ) from exc
    return bytes(payload).decode("utf-8").strip()


def admin_client(
    shop: str, settings: Settings, secret_reader: Callable[[str], str] | None = None
) -> ShopifyAdmin:
    """A client for ``shop`` configured from settings (version, address, timeouts, ceiling)."""
    return ShopifyAdmin(
        shop=shop.lower(),
        token=token_for(shop, settings, secret_reader),
        api_version=settings.shopify_api_version,
        admin_url=settings.shopify_admin_url,
        timeout=settings.shopify_timeout_seconds,
        max_retries=settings.shopify_max_retries,
        ceiling=process_ceiling(settings.shopify_max_calls_per_minute),
    )
