"""Deliver webhook events to a local endpoint as Shopify would: signed, at a rate, at least once.

The only module of the simulator that does network I/O. Deliveries are HTTP POSTs over
keep-alive connections (one ``requests.Session`` per worker thread), open-loop at
``rate_per_s`` (send times follow the schedule, not the answers) or as fast as the workers
go. Like Shopify:

* a delivery answered 5xx, or not answered (connection error, timeout), is retried with
  exponential backoff, with the same body and headers (same ``X-Shopify-Webhook-Id``);
  Shopify retries 8 times over 4 hours; here ``max_retries`` times after ``retry_backoff_s``,
  doubling, so a test finishes in milliseconds;
* ``duplicate_rate`` of the events are delivered twice (Shopify's at-least-once redelivery);
* the answer must come within ``timeout`` seconds (Shopify: 1 s to connect, 5 s in all).

Unlike Shopify, a 4xx answer is never retried (Shopify retries every non-2xx answer): a 4xx
means the receiver judged the delivery itself, and retrying it here would only hide that.
Targets are loopback addresses only, and every run is bounded in events and in time.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from devkit.simulator.events import WebhookEvent, headers

NO_ANSWER = 0  # status_counts key for a delivery that got no HTTP answer


@dataclass
class SendReport:
    """What a run delivered. ``sent`` and ``accepted`` count unique events; the rest, attempts."""

    sent: int = 0  # unique events handed to the endpoint
    deliveries: int = 0  # HTTP attempts, including duplicates and retries
    accepted: int = 0  # unique events that got a 2xx on some delivery
    duplicates_sent: int = 0  # extra deliveries of an already delivered event
    retries: int = 0  # attempts repeated after a 5xx or no answer
    status_counts: dict[int, int] = field(default_factory=dict)  # HTTP status -> attempts (0: no answer)
    latencies: list[float] = field(default_factory=list)  # ms per attempt that got an answer
    failures: list[tuple[str, int | None, str]] = field(default_factory=list)  # (webhook id, status, error)
    elapsed_s: float = 0.0
    truncated: bool = False  # stopped by max_events or max_seconds
    max_schedule_lag_ms: float = 0.0  # how far behind the open-loop schedule sends fell

    def latency_ms(self, quantile: float) -> float | None:
        """A latency quantile (0..1) over answered attempts, or None without any."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "deliveries": self.deliveries,
            "accepted": self.accepted,
            "duplicates_sent": self.duplicates_sent,
            "retries": self.retries,
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
            "latency_ms": {
                "p50": self.latency_ms(0.50),
                "p95": self.latency_ms(0.95),
                "p99": self.latency_ms(0.99),
                "max": max(self.latencies) if self.latencies else None,
            },
            "failures": len(self.failures),
            "first_failures": [list(f) for f in self.failures[:10]],
            "elapsed_s": round(self.elapsed_s, 3),
            "events_per_s": round(self.sent / self.elapsed_s, 1) if self.elapsed_s > 0 else None,
            "truncated": self.truncated,
            "max_schedule_lag_ms": round(self.max_schedule_lag_ms, 1),
        }


def check_loopback(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is http(s) to localhost or a loopback address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL")
    host = parts.hostname
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"the simulator only sends to loopback addresses (127.0.0.0/8, ::1, localhost), not {host!r}"
        )


class _Delivery:
    """Shared state of one run: sessions per thread, counters under a lock."""

    def __init__(self, url: str, secret: str, timeout: float, max_retries: int, backoff_s: float) -> None:
        self.url = url
        self.secret = secret
        self.timeout = (min(1.0, timeout), timeout)  # (connect, read), as Shopify: 1 s to connect
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.local = threading.local()
        self.lock = threading.Lock()
        self.report = SendReport()
        self.accepted_ids: set[str] = set()
        self.outcome: dict[str, tuple[int | None, str]] = {}
        self.sessions: list[requests.Session] = []

    def session(self) -> requests.Session:
        s: requests.Session | None = getattr(self.local, "session", None)
        if s is None:
            s = requests.Session()
            self.local.session = s
            with self.lock:
                self.sessions.append(s)
        return s

    def deliver(self, event: WebhookEvent) -> None:
        """POST ``event``; retry on 5xx / no answer with backoff; never on 4xx."""
        hdrs = headers(event, self.secret)
        status: int | None = None
        error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            began = time.perf_counter()
            try:
                response = self.session().post(self.url, data=event.body, headers=hdrs, timeout=self.timeout)
                status, error = response.status_code, "" if response.ok else response.text[:200]
                elapsed_ms = (time.perf_counter() - began) * 1000
            except requests.RequestException as exc:
                status, error, elapsed_ms = None, f"{type(exc).__name__}: {exc}"[:200], -1.0
            retry = status is None or status >= 500
            with self.lock:
                r = self.report
                r.deliveries += 1
                key = NO_ANSWER if status is None else status
                r.status_counts[key] = r.status_counts.get(key, 0) + 1
                if elapsed_ms >= 0:
                    r.latencies.append(elapsed_ms)
                if status is not None and 200 <= status < 300:
                    self.accepted_ids.add(event.webhook_id)
                    self.outcome[event.webhook_id] = (status, "")
                    return
                if event.webhook_id not in self.accepted_ids:
                    self.outcome[event.webhook_id] = (status, error)
                if retry and attempt < self.max_retries:
                    r.retries += 1
            if not retry:
                return


def send_webhooks(
    events: Iterable[WebhookEvent],
    url: str,
    secret: str,
    rate_per_s: float | None = None,
    duplicate_rate: float = 0.02,
    concurrency: int = 4,
    timeout: float = 5.0,
    *,
    max_retries: int = 3,
    retry_backoff_s: float = 0.1,
    max_events: int = 100_000,
    max_seconds: float = 600.0,
    seed: int = 0,
) -> SendReport:
    """Deliver ``events`` (in order) to ``url``, signed with ``secret``; return what happened.

    Stops submitting after ``max_events`` events or ``max_seconds`` (``truncated`` in the
    report); deliveries already started finish (each is bounded by ``timeout`` and retries).
    """
    check_loopback(url)
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if rate_per_s is not None and rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive (or None for as fast as possible)")
    if not 0 <= duplicate_rate <= 1:
        raise ValueError("duplicate_rate must be between 0 and 1")
    run = _Delivery(url, secret, timeout, max_retries, retry_backoff_s)
    rnd = random.Random(seed)
    # Bounded in-flight work keeps memory flat on long streams; under overload the schedule
    # slips (reported as max_schedule_lag_ms) instead of queueing without limit.
    slots = threading.BoundedSemaphore(concurrency * 8)
    started = time.perf_counter()
    deadline = started + max_seconds
    submitted = 0
    unique: list[str] = []

    def release(future: Future[None]) -> None:
        slots.release()
        exc = future.exception()
        if exc is not None:  # a bug, not an HTTP outcome: keep it visible in the report
            with run.lock:
                run.report.status_counts[NO_ANSWER] = run.report.status_counts.get(NO_ANSWER, 0) + 1
                run.report.failures.append(("?", None, f"{type(exc).__name__}: {exc}"))

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook-sender") as pool:
        for event in events:
            now = time.perf_counter()
            if submitted >= max_events or now >= deadline:
                run.report.truncated = True
                break
            if rate_per_s is not None:
                due = started + submitted / rate_per_s
                if due > now:
                    time.sleep(min(due - now, max(0.0, deadline - now)))
                else:
                    run.report.max_schedule_lag_ms = max(run.report.max_schedule_lag_ms, (now - due) * 1000)
            copies = 2 if rnd.random() < duplicate_rate else 1
            for _ in range(copies):
                slots.acquire()
                pool.submit(run.deliver, event).add_done_callback(release)
            submitted += 1
            unique.append(event.webhook_id)
            run.report.duplicates_sent += copies - 1
    for s in run.sessions:
        s.close()
    report = run.report
    report.elapsed_s = time.perf_counter() - started
    report.sent = len(unique)
    report.accepted = sum(1 for w in unique if w in run.accepted_ids)
    report.failures = report.failures + [
        (w, *run.outcome.get(w, (None, "not delivered"))) for w in unique if w not in run.accepted_ids
    ]
    report.status_counts = dict(sorted(Counter(report.status_counts).items()))
    return report
