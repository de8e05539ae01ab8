"""The Slack notifier against a real HTTP receiver on 127.0.0.1: what it posts, and that no
failure of the receiver (an error status, a timeout, a refused connection) reaches the caller."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.adapters.slack import (
    DisabledNotifier,
    SlackWebhookNotifier,
    notifier_from_settings,
    slack_message,
)
from shared.errors import ConfigurationError
from shared.ports import Alert, AlertNotifier
from shared.settings import Settings

ALERT = Alert(
    title="Feature drift on demand",
    text="3 of 23 features drifted in the last hour.",
    severity="critical",
    fields={"model": "demand", "version": "v7"},
    link="https://example.com/drift/2025-03-01T10.html",
)
TOKEN_PATH = "/services/T000/B000/secret-token-xyz"


@dataclass
class Receiver:
    """What the local receiver answers, and what it received."""

    status: int = 200
    body: bytes = b"ok"
    delay_seconds: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.requests.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(self.rfile.read(length)),
                }
            )
            if state.delay_seconds:
                state.release.wait(state.delay_seconds)  # the test's teardown releases it early
            self.send_response(state.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{TOKEN_PATH}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_an_alert_is_posted_as_slack_json(receiver: Receiver) -> None:
    notifier: AlertNotifier = SlackWebhookNotifier(receiver.url, timeout_seconds=2.0)
    result = notifier.notify(ALERT)
    assert result.delivered and result.detail == ""
    [request] = receiver.requests
    assert request["path"] == TOKEN_PATH
    assert request["content_type"].startswith("application/json")
    assert request["body"] == slack_message(ALERT)
    text = request["body"]["text"]
    assert "[CRITICAL] Feature drift on demand" in text
    assert "3 of 23 features drifted" in text and "*model:* demand" in text
    assert "<https://example.com/drift/2025-03-01T10.html|details>" in text


def test_the_message_has_a_header_the_text_the_fields_and_the_link() -> None:
    blocks = slack_message(ALERT)["blocks"]
    assert [block["type"] for block in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"]["text"].endswith("[CRITICAL] Feature drift on demand")
    assert [f["text"] for f in blocks[2]["fields"]] == ["*model:* demand", "*version:* v7"]
    bare = slack_message(Alert(title="t", text="x"))["blocks"]
    assert [block["type"] for block in bare] == ["header", "section"]


def test_an_error_status_is_a_failed_result_not_an_exception(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status, receiver.body = 500, b"internal_error"
    result = SlackWebhookNotifier(receiver.url, timeout_seconds=2.0).notify(ALERT)
    assert not result.delivered
    assert result.detail == "HTTP 500: internal_error"
    assert len(receiver.requests) == 1  # one attempt: the next check tries again
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [warning] = [entry for entry in logged if entry["message"] == "alert not delivered to Slack"]
    assert warning["severity"] == "WARNING" and warning["detail"] == "HTTP 500: internal_error"
    assert warning["host"] == "127.0.0.1"


def test_a_slow_receiver_times_out_into_a_failed_result(receiver: Receiver) -> None:
    receiver.delay_seconds = 30.0
    result = SlackWebhookNotifier(receiver.url, timeout_seconds=0.2).notify(ALERT)
    assert not result.delivered
    assert result.detail == "timeout after 0.2 s"


def test_a_refused_connection_is_a_failed_result() -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = SlackWebhookNotifier(f"http://127.0.0.1:{port}{TOKEN_PATH}", timeout_seconds=2.0).notify(ALERT)
    assert not result.delivered
    assert result.detail.startswith("unreachable: ConnectionRefusedError")


def test_the_webhook_url_never_appears_in_logs_results_or_repr(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 404
    notifier = SlackWebhookNotifier(receiver.url, timeout_seconds=2.0)
    result = notifier.notify(ALERT)
    for text in (capsys.readouterr().out, result.detail, repr(notifier)):
        assert "secret-token-xyz" not in text
    not_http = SlackWebhookNotifier("file:///etc/secret-token-xyz")
    result = not_http.notify(ALERT)
    assert not result.delivered and "secret-token-xyz" not in result.detail


def test_settings_choose_slack_or_nothing(receiver: Receiver) -> None:
    settings = Settings.from_env(
        {"SHOPML_SLACK_WEBHOOK_URL": receiver.url, "SHOPML_SLACK_TIMEOUT_SECONDS": "1.5"}
    )
    notifier = notifier_from_settings(settings)
    assert isinstance(notifier, SlackWebhookNotifier) and notifier.timeout_seconds == 1.5
    assert notifier.notify(ALERT).delivered
    assert "secret-token-xyz" not in repr(settings)

    off = notifier_from_settings(Settings.from_env({}))
    assert isinstance(off, DisabledNotifier)
    result = off.notify(ALERT)
    assert not result.delivered and "SHOPML_SLACK_WEBHOOK_URL" in result.detail
    assert len(receiver.requests) == 1


def test_a_webhook_url_that_is_not_http_is_a_configuration_error_that_hides_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({"SHOPML_SLACK_WEBHOOK_URL": "hooks.slack.com/services/secret-token-xyz"})
    assert "secret-token-xyz" not in str(raised.value)
    assert Settings.from_env({}).slack_timeout_seconds == 3.0
