"""predict's metrics pushed over OTLP/HTTP (shared/serving/telemetry.py) to a real HTTP receiver
on 127.0.0.1: what an export carries (requests by status, the latency histogram, fallbacks, the
live model version, the instance's resource), that it starts only after the first answer, that a
failing receiver never fails a request, and the last export when the server is stopped (SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

from shared.logs import get_logger
from shared.serving import telemetry
from shared.serving.predict_app import LATENCY_BUCKETS, Metrics
from tests.fakes import RecordingPublisher
from tests.functions.predict_support import (
    KEY,
    REPO,
    SHOP,
    FeatureServer,
    MemoryPointerStore,
    card,
    online_row,
    serve,
    settings,
    train_onnx,
    write_version,
)


class Receiver:
    """An OTLP/HTTP metrics receiver: records each POST (path, headers, JSON body) and answers
    ``status`` (200 with an empty ExportMetricsServiceResponse by default)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    receiver.posts.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(data))
                    )
                    receiver.arrived.notify_all()
                body = b"{}" if receiver.status == 200 else b'{"code": 13, "message": "down"}'
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.posts) >= count, timeout)
        return [body for _, _, body in self.posts]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def model() -> bytes:
    return train_onnx(1.0, seed=1)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metrics_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (resource_metrics,) = body["resourceMetrics"]
    (scope,) = resource_metrics["scopeMetrics"]
    return {metric["name"]: metric for metric in scope["metrics"]}


def resource_of(body: dict[str, Any]) -> dict[str, str]:
    (resource_metrics,) = body["resourceMetrics"]
    return {a["key"]: a["value"]["stringValue"] for a in resource_metrics["resource"]["attributes"]}


def points_by(metric: dict[str, Any], kind: str, label: str) -> dict[str, float]:
    """A sum's or gauge's values by one attribute's value."""
    found = {}
    for point in metric[kind]["dataPoints"]:
        labels = {a["key"]: a["value"]["stringValue"] for a in point["attributes"]}
        found[labels.get(label, "")] = point["asDouble"]
    return found


def predict_body(*variants: int) -> dict[str, Any]:
    return {"shop_domain": SHOP, "horizon_days": 3, "items": [{"variant_id": v} for v in variants]}


def served(tmp_path: Path, model: bytes, endpoint: str, **env: str) -> tuple[Any, Any]:
    registry = write_version(tmp_path / "registry", "1.0.0", model, card("1.0.0"))
    pointers = MemoryPointerStore()
    pointers.deploy("1.0.0")
    config = settings(SHOPML_METRICS_EXPORT="otlp", SHOPML_OTLP_ENDPOINT=endpoint, **env)
    features = FeatureServer({101: online_row(rmean_28=5.0)})
    return serve(config, pointers, registry, features, RecordingPublisher())


def test_an_export_carries_requests_by_status_latency_fallbacks_and_the_live_version(
    tmp_path: Path, model: bytes, receiver: Receiver
) -> None:
    client, runtime = served(tmp_path, model, receiver.url, SHOPML_METRICS_EXPORT_INTERVAL_SECONDS="3600")
    assert runtime.exporter is None  # nothing before the first answer
    assert (
        client.post("/", json=predict_body(101, 999), headers={"Authorization": f"Bearer {KEY}"}).status_code
        == 200
    )
    assert (
        client.post("/", json=predict_body(101), headers={"Authorization": "Bearer wrong"}).status_code == 401
    )
    assert client.post("/", content=b"{", headers={"Authorization": f"Bearer {KEY}"}).status_code == 400
    assert runtime.exporter is not None  # started once the first answer was sent

    result = runtime.exporter.export()

    assert result.ok and result.bytes > 0
    ((path, headers, body),) = receiver.posts
    assert path == "/v1/metrics"
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers  # a local receiver gets no Google token
    resource = resource_of(body)
    assert resource["service.name"] == "predict"
    assert len(resource["service.instance.id"]) == 32
    metrics = metrics_of(body)
    requests = metrics["predict_requests_total"]
    assert requests["sum"]["isMonotonic"] is True
    assert requests["sum"]["aggregationTemporality"] == 2  # cumulative
    assert points_by(requests, "sum", "status") == {"200": 1.0, "401": 1.0, "400": 1.0}
    fallbacks = points_by(metrics["predict_fallback_items_total"], "sum", "reason")
    assert fallbacks["no_history"] == 1.0  # variant 999 has no online features
    assert fallbacks["unknown_shop"] == 0.0
    assert points_by(metrics["predict_live_model_info"], "gauge", "version") == {"1.0.0": 1.0}
    (latency,) = metrics["predict_latency_seconds"]["histogram"]["dataPoints"]
    assert latency["count"] == "3"
    assert latency["explicitBounds"] == list(LATENCY_BUCKETS)
    assert len(latency["bucketCounts"]) == len(LATENCY_BUCKETS) + 1
    assert sum(int(count) for count in latency["bucketCounts"]) == 3
    assert metrics["predict_pointer_age_seconds"]["gauge"]["dataPoints"][0]["asDouble"] >= 0
    runtime.exporter.shutdown(last_export=False)


def test_exports_repeat_every_interval_on_their_own(tmp_path: Path, model: bytes, receiver: Receiver) -> None:
    client, runtime = served(tmp_path, model, receiver.url, SHOPML_METRICS_EXPORT_INTERVAL_SECONDS="0.05")
    client.post("/", json=predict_body(101), headers={"Authorization": f"Bearer {KEY}"})
    bodies = receiver.wait_for(3)
    runtime.exporter.shutdown(last_export=False)
    assert len(bodies) >= 3
    ids = {resource_of(body)["service.instance.id"] for body in bodies}
    assert len(ids) == 1  # one instance, one series


@pytest.mark.parametrize("receiver_down", [True, False], ids=["nothing-listening", "http-503"])
def test_a_failing_receiver_never_fails_a_request(
    tmp_path: Path, model: bytes, receiver: Receiver, receiver_down: bool
) -> None:
    if receiver_down:
        endpoint = f"http://127.0.0.1:{free_port()}/v1/metrics"
    else:
        receiver.status = 503
        endpoint = receiver.url
    client, runtime = served(tmp_path, model, endpoint, SHOPML_METRICS_EXPORT_INTERVAL_SECONDS="0.02")
    headers = {"Authorization": f"Bearer {KEY}"}
    answers = []
    for _ in range(10):
        answers.append(client.post("/", json=predict_body(101), headers=headers).status_code)
        time.sleep(0.01)
    while runtime.exporter.failures < 2:
        time.sleep(0.01)
    answers.append(client.post("/", json=predict_body(101), headers=headers).status_code)
    assert answers == [200] * 11
    result = runtime.exporter.shutdown()
    assert result is not None and not result.ok
    assert runtime.exporter.failures >= 2


def test_a_histogram_is_exported_with_per_bucket_counts() -> None:
    metrics = Metrics()
    for seconds in (0.0005, 0.0015, 0.003, 0.004, 5.0):
        metrics.latency.observe(seconds)
    (histogram,) = [
        m
        for m in telemetry.otlp_metrics(metrics.registry.collect(), now=10.0, started=1.0)
        if "histogram" in m
    ]
    (point,) = histogram["histogram"]["dataPoints"]
    # bounds 0.001, 0.002, 0.005, ...: one below 1 ms, one in (1, 2] ms, two in (2, 5] ms, one above 2 s
    assert point["bucketCounts"] == ["1", "1", "2", "0", "0", "0", "0", "0", "0", "0", "0", "1"]
    assert point["count"] == "5"
    assert point["sum"] == pytest.approx(5.009)
    assert point["timeUnixNano"] == "10000000000"
    assert histogram["unit"] == "s"


def test_empty_labels_are_left_out_and_a_counter_starts_at_its_creation() -> None:
    registry = prometheus_client.CollectorRegistry()
    info = prometheus_client.Info("live", "doc", registry=registry)
    info.info({"version": "none", "slot": ""})
    counter = prometheus_client.Counter("hits", "doc", registry=registry)
    counter.inc(2)
    found = {m["name"]: m for m in telemetry.otlp_metrics(registry.collect(), now=2e9, started=1.0)}
    (info_point,) = found["live_info"]["gauge"]["dataPoints"]
    assert info_point["attributes"] == [{"key": "version", "value": {"stringValue": "none"}}]
    (hits,) = found["hits_total"]["sum"]["dataPoints"]
    assert hits["asDouble"] == 2.0
    assert 1e18 < int(hits["startTimeUnixNano"]) <= int(hits["timeUnixNano"])


def test_only_google_endpoints_get_a_google_token() -> None:
    assert telemetry.uses_google_auth("https://telemetry.googleapis.com/v1/metrics")
    assert not telemetry.uses_google_auth("http://127.0.0.1:4318/v1/metrics")
    assert not telemetry.uses_google_auth("https://evilgoogleapis.com/v1/metrics")


def test_a_rejected_partial_success_counts_as_a_failure(receiver: Receiver) -> None:
    exporter = telemetry.OtlpExporter(
        receiver.url, Metrics().registry, {"service.name": "predict"}, get_logger("test")
    )
    assert exporter.export().ok
    assert not telemetry.OtlpExporter._result(200, b'{"partialSuccess": {"rejectedDataPoints": "2"}}', 9).ok


def test_stopping_the_server_pushes_what_was_counted_since_the_last_export(
    tmp_path: Path, receiver: Receiver
) -> None:
    # functions-framework's ASGI server as Cloud Run runs it; SIGTERM is what Cloud Run sends.
    port, closed = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{closed}",  # nothing there: no live model, a fallback
        "SHOPML_REGISTRY": tmp_path.as_uri(),
        "SHOPML_PREDICT_KEYS": f"{SHOP}={KEY}",
        "SHOPML_PREDICT_SAMPLE_RATE": "0",
        "SHOPML_METRICS_EXPORT": "otlp",
        "SHOPML_OTLP_ENDPOINT": receiver.url,
        "SHOPML_METRICS_EXPORT_INTERVAL_SECONDS": "3600",  # only the last export can arrive
    }
    cli = Path(sys.executable).with_name("functions-framework")
    process = subprocess.Popen(
        [str(cli), "--target", "predict", "--source", str(REPO / "functions/predict/main.py"), "--asgi",
         "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        import urllib3

        http = urllib3.PoolManager(retries=False, timeout=10)
        body = json.dumps(predict_body(101)).encode()
        headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
        status = None
        deadline = time.monotonic() + 60
        while status is None and time.monotonic() < deadline:
            try:
                status = http.request("POST", f"http://127.0.0.1:{port}/", body=body, headers=headers).status
            except urllib3.exceptions.HTTPError:
                time.sleep(0.2)
        assert status == 200
        time.sleep(0.5)  # the background task that starts the exporter runs after the answer
        assert receiver.posts == []
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    bodies = receiver.wait_for(1, timeout=1)
    assert len(bodies) == 1, output.decode(errors="replace")[-3000:]
    metrics = metrics_of(bodies[0])
    assert points_by(metrics["predict_requests_total"], "sum", "status") == {"200": 1.0}
    assert points_by(metrics["predict_live_model_info"], "gauge", "version") == {"none": 1.0}
    assert sum(points_by(metrics["predict_fallback_items_total"], "sum", "reason").values()) == 1.0


def test_the_push_is_off_unless_asked_and_only_otlp_is_understood() -> None:
    from shared.errors import ConfigurationError
    from shared.settings import Settings

    assert Settings.from_env({}).metrics_export == ""
    assert Settings.from_env({"SHOPML_METRICS_EXPORT": "OTLP"}).metrics_export == "otlp"
    with pytest.raises(ConfigurationError, match="SHOPML_METRICS_EXPORT"):
        Settings.from_env({"SHOPML_METRICS_EXPORT": "prometheus"})
