"""Load generation on loopback: open-loop fixed rate (Python) and closed-loop saturation (wrk).

Open loop: requests are scheduled at fixed intervals and latency is measured from the
*scheduled* send time, so a slow server is not hidden by a slow client (no coordinated
omission). Bounded in count and time; targets 127.0.0.1 only.
"""

from __future__ import annotations

import http.client
import queue
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


@dataclass
class LoadResult:
    target_rate: float | None
    duration_s: float
    requests: int
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    reported_percentiles_ms: dict[str, float] = field(default_factory=dict)  # wrk gives no samples
    ok_ids: list[str] = field(default_factory=list)  # X-Shopify-Webhook-Id of each 200
    # For answers with ``Server-Timing: pubsub;dur=…`` (ingest_webhook with SHOPML_SERVER_TIMING):
    # the Publish RPC's round trip, and the request's latency without it (the function's own).
    broker_ms: list[float] = field(default_factory=list)
    own_ms: list[float] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float, of: str = "latencies_ms") -> float:
        samples: list[float] = getattr(self, of)
        if not samples:
            return (
                self.reported_percentiles_ms.get(str(int(q)), float("nan"))
                if of == "latencies_ms"
                else float("nan")
            )
        ordered = sorted(samples)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index]

    def summary(self) -> dict[str, float | int | dict[str, int] | None]:
        return {
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "requests": self.requests,
            "ok": self.statuses.get(200, 0),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else None,
            **(
                {
                    "broker_p99_ms": round(self.percentile(99, "broker_ms"), 2),
                    "own_p99_ms": round(self.percentile(99, "own_ms"), 2),
                }
                if self.own_ms
                else {}
            ),
        }


RequestFactory = Callable[[int], tuple[bytes, dict[str, str]]]


def open_loop(
    url: str, rate: float, duration_s: float, make_request: RequestFactory, workers: int = 16
) -> LoadResult:
    """Send ``rate`` requests/s for ``duration_s`` seconds; latency from scheduled time."""
    parsed = urlparse(url)
    total = int(rate * duration_s)
    interval = 1.0 / rate
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    result = LoadResult(target_rate=rate, duration_s=duration_s, requests=0)
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
        while True:
            job = jobs.get()
            if job is None:
                break
            index, scheduled = job
            body, headers = make_request(index)
            try:
                conn.request("POST", parsed.path or "/", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
                timing = response.getheader("Server-Timing") or ""
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=10)
                with lock:
                    result.errors += 1
                    result.requests += 1
                continue
            latency = (time.perf_counter() - scheduled) * 1000
            with lock:
                result.requests += 1
                result.statuses[status] += 1
                result.latencies_ms.append(latency)
                if timing.startswith("pubsub;dur="):
                    broker = float(timing.removeprefix("pubsub;dur="))
                    result.broker_ms.append(broker)
                    result.own_ms.append(latency - broker)
                if status == 200 and "X-Shopify-Webhook-Id" in headers:
                    result.ok_ids.append(headers["X-Shopify-Webhook-Id"])
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    for index in range(total):
        scheduled = start + index * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        jobs.put((index, scheduled))
    for _ in threads:
        jobs.put(None)
    for thread in threads:
        thread.join(timeout=duration_s + 30)
    result.duration_s = time.perf_counter() - start
    return result


_WRK_SCRIPT = """
local made = 0
function setup(thread)
  made = made + 1
  thread:set("tag", tostring(made))
end
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["X-Shopify-Webhook-Id"] = "bench-" .. RUN .. "-" .. tag .. "-" .. counter
  return wrk.format("POST", "/", nil, wrk.body)
end
"""


def _to_ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk_saturate(
    url: str,
    body: bytes,
    headers: dict[str, str],
    duration_s: int = 10,
    connections: int = 16,
    threads: int = 2,
) -> LoadResult:
    """Closed-loop saturation with wrk (same body each request, a fresh webhook id each)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        run_id = _lua_string(uuid.uuid4().hex[:12].encode())
        lines = [f"RUN = {run_id}", _WRK_SCRIPT, f"wrk.body = {_lua_string(body)}"]
        lines += [
            f"wrk.headers[{_lua_string(k.encode())}] = {_lua_string(v.encode())}" for k, v in headers.items()
        ]
        script.write_text("\n".join(lines))
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration_s}s",
                "--latency",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration_s + 60,
        ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result = LoadResult(target_rate=None, duration_s=total / rps if rps else duration_s, requests=total)
    bad = int(non2xx.group(1)) if non2xx else 0
    result.statuses[200] = total - bad
    if bad:
        result.statuses[0] = bad  # wrk does not say which non-2xx statuses
    result.errors = sum(int(g) for g in errors.groups()) if errors else 0
    percentiles = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, flags=re.M))
    result.reported_percentiles_ms = {k: _to_ms(v) for k, v in percentiles.items()}
    return result


def _lua_string(raw: bytes) -> str:
    return '"' + "".join(f"\\{b}" for b in raw) + '"'
