"""A stand-in for Feast's feature server in the serving benchmark: ``POST /get-online-features``
answered in Feast's documented shape (``metadata.feature_names``, ``results`` with values,
statuses and event timestamps), every asked feature PRESENT and stamped today 00:00 UTC.

It is not Feast: it answers in well under a millisecond, so the benchmark's ``predict`` figure
is predict's own path (auth, the feature request over loopback HTTP, ONNX, JSON), not Feast's
latency. ``python -m bench.feature_stand_in PORT`` (loopback only).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from shared.features.views import JOIN_KEY

STRING_FEATURES = frozenset({"product_type"})


def answer(request: dict[str, Any], stamp: str) -> dict[str, Any]:
    """Feast's answer for ``request`` (``entities``, ``features`` as ``view:feature`` refs)."""
    ids = [int(v) for v in request["entities"][JOIN_KEY]]
    names = [JOIN_KEY]
    results: list[dict[str, Any]] = [
        {"values": ids, "statuses": ["PRESENT"] * len(ids), "event_timestamps": [stamp] * len(ids)}
    ]
    for ref in request["features"]:
        view, _, feature = ref.partition(":")
        names.append(f"{view}__{feature}")
        values: list[Any] = ["Shirts" if feature in STRING_FEATURES else float(vid % 17) + 0.5 for vid in ids]
        results.append(
            {"values": values, "statuses": ["PRESENT"] * len(ids), "event_timestamps": [stamp] * len(ids)}
        )
    return {"metadata": {"feature_names": names}, "results": results}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Feast's server (uvicorn) does
    # TCP_NODELAY, as uvicorn sets: headers and body go out in two writes, and with Nagle the
    # second waits for the client's delayed ACK (~40 ms on loopback).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._send(200, b"{}")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
        self._send(200, json.dumps(answer(json.loads(body), stamp)).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
