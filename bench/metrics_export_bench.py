"""What predict's metrics push costs (``shared/serving/telemetry.py``, ``SHOPML_METRICS_EXPORT=otlp``).

A ``predict_app.Metrics`` registry filled as a busy instance fills it (six statuses, the five
fallback reasons, 100,000 latencies, the live model info, the pointer age), then:

* encoding: CPU time (``time.thread_time``) of one export body (registry read + OTLP JSON),
  and its size in bytes (plain and gzip-compressed, for reference: it is sent uncompressed);
* one export end to end to an OTLP/HTTP receiver on 127.0.0.1 (``http.server``): wall time and
  CPU time of the exporting thread (encoding + urllib3 POST + reading the answer);
* importing ``shared.serving.telemetry`` in a fresh interpreter that already imported
  ``predict_app`` (what the first answer's background task adds).

No token refresh is measured (google-auth's metadata-server token, cached for about an hour).

``python bench/metrics_export_bench.py [--quick]``; writes bench/out/metrics_export.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.logs import get_logger  # noqa: E402
from shared.serving import telemetry  # noqa: E402
from shared.serving.forecast import FALLBACK_REASONS  # noqa: E402
from shared.serving.predict_app import Metrics  # noqa: E402
from shared.settings import Settings  # noqa: E402


def busy_metrics(observations: int) -> Metrics:
    metrics = Metrics()
    for status, count in (("200", 9000), ("400", 40), ("401", 30), ("405", 2), ("413", 1), ("503", 3)):
        metrics.requests.labels(status=status).inc(count)
    for reason in FALLBACK_REASONS:
        metrics.fallbacks.labels(reason=reason).inc(7)
    metrics.items.inc(20_000)
    for i in range(observations):
        metrics.latency.observe(0.0005 + (i % 1000) * 0.00005)
    metrics.live_model.info({"version": "1.4.0", "slot": "green"})
    metrics.pointer_age.set(0.8)
    return metrics


class Receiver:
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "mean": statistics.fmean(ordered),
    }


def import_seconds(repeats: int) -> list[float]:
    script = (
        f"import sys, time; sys.path.insert(0, {str(REPO)!r}); import shared.serving.predict_app;"
        " t = time.perf_counter(); import shared.serving.telemetry; print(time.perf_counter() - t)"
    )
    return [
        float(
            subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        )
        for _ in range(repeats)
    ]


def run(quick: bool = False) -> dict[str, Any]:
    n = 200 if quick else 2000
    metrics = busy_metrics(100_000)
    receiver = Receiver()
    settings = Settings.from_env({"SHOPML_METRICS_EXPORT": "otlp", "SHOPML_OTLP_ENDPOINT": receiver.url})
    exporter = telemetry.exporter(settings, metrics.registry, get_logger("bench"))

    encode_cpu = []
    for _ in range(n):
        started = time.thread_time()
        body = exporter.body()
        encode_cpu.append(time.thread_time() - started)
    export_wall, export_cpu = [], []
    for _ in range(n // 2):
        wall, cpu = time.perf_counter(), time.thread_time()
        result = exporter.export()
        export_cpu.append(time.thread_time() - cpu)
        export_wall.append(time.perf_counter() - wall)
        assert result.ok, result.detail
    imports = import_seconds(3 if quick else 5)
    receiver.server.shutdown()
    return {
        "exports": n // 2,
        "metrics": len(json.loads(body)["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]),
        "bytes": len(body),
        "gzip_bytes": len(gzip.compress(body)),
        "encode_cpu_ms": {k: v * 1000 for k, v in quantiles(encode_cpu).items()},
        "export_cpu_ms": {k: v * 1000 for k, v in quantiles(export_cpu).items()},
        "export_wall_ms": {k: v * 1000 for k, v in quantiles(export_wall).items()},
        "import_ms": [round(s * 1000, 2) for s in imports],
        "cpu_share_at_60s": statistics.median(export_cpu) / settings.metrics_export_interval_seconds,
    }


def report(results: dict[str, Any]) -> str:
    e, x, w = results["encode_cpu_ms"], results["export_cpu_ms"], results["export_wall_ms"]
    return (
        f"{results['metrics']} metrics, {results['bytes']} bytes ({results['gzip_bytes']} gzipped)\n"
        f"encode CPU p50 {e['p50']:.3f} ms p99 {e['p99']:.3f} ms\n"
        f"export CPU p50 {x['p50']:.3f} ms p99 {x['p99']:.3f} ms;"
        f" wall p50 {w['p50']:.3f} ms p99 {w['p99']:.3f} ms ({results['exports']} exports)\n"
        f"import of shared.serving.telemetry: {results['import_ms']} ms\n"
        f"CPU share of one core at one export per 60 s: {results['cpu_share_at_60s']:.1e}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = run(quick=args.quick)
    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "metrics_export.json").write_text(json.dumps(results, indent=2))
    print(report(results))
