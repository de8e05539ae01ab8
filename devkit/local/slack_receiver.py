"""A local stand-in for a Slack incoming webhook: accepts JSON POSTs, keeps them, answers ``ok``.

The demo and the stack tests point ``SHOPML_SLACK_WEBHOOK_URL`` at it, so the alerts
``drift_monitor`` sends arrive somewhere they can be read back (``messages``), and, with
``log_path``, appended as JSON lines to a file another process can read. Slack answers 200 with
the body ``ok``; so does this (``status`` and ``body`` change that to test failures).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class SlackReceiver:
    """``with SlackReceiver() as slack: ... slack.url ... slack.messages``."""

    def __init__(self, log_path: Path | None = None, *, status: int = 200, body: bytes = b"ok") -> None:
        self.log_path = log_path
        self.status = status
        self.body = body
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/services/T000/B000/local"

    def start(self) -> SlackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = {"invalid_json": raw.decode("utf-8", "replace")}
                receiver._keep(message)
                self.send_response(receiver.status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="slack-receiver", daemon=True)
        self._thread.start()
        return self

    def _keep(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(message) + "\n")

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> SlackReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
