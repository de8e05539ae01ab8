"""``AlertNotifier`` on a Slack incoming webhook: one JSON POST per alert, with a short timeout.

The webhook URL is ``SHOPML_SLACK_WEBHOOK_URL`` (in the cloud a Secret Manager secret handed
to the function as that variable). It carries Slack's token, so it is never logged: failures
name the host only.

A failing Slack never fails the caller: every outcome (2xx, an HTTP error, a timeout, a refused
connection, a malformed URL) comes back as a ``NotificationResult`` and failures are logged as
one warning. Slack answers 200 with body ``ok`` when it accepted the message; any other 2xx is
taken as delivered too (receivers other than Slack, the local one).

Only the standard library (``urllib``): the drift check imports nothing heavy for one POST.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from shared.logs import StructuredLogger, get_logger
from shared.ports import Alert, AlertNotifier, NotificationResult
from shared.settings import Settings

SEVERITY_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "resolved": ":white_check_mark:"}
MAX_DETAIL_BODY = 200  # characters of an error answer kept in the result


def slack_message(alert: Alert) -> dict[str, Any]:
    """The incoming-webhook payload: ``text`` (notifications, clients without blocks) and the
    same content as Block Kit blocks (a header, the text, the fields, the link)."""
    emoji = SEVERITY_EMOJI.get(alert.severity, ":bell:")
    title = f"{emoji} [{alert.severity.upper()}] {alert.title}"
    facts = [f"*{name}:* {value}" for name, value in alert.fields.items()]
    lines = [title, alert.text, *facts]
    if alert.link:
        lines.append(f"<{alert.link}|details>")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": alert.text[:3000]}},
    ]
    if facts:
        # A section holds at most 10 fields.
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts[:10]]})
    if alert.link:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{alert.link}|details>"}]}
        )
    return {"text": "\n".join(lines), "blocks": blocks}


class SlackWebhookNotifier:
    """Posts alerts to one Slack incoming webhook."""

    def __init__(self, url: str, *, timeout_seconds: float = 3.0, logger: StructuredLogger | None = None):
        parts = urlsplit(url)
        # Only http(s): urllib would open file: and other schemes too.
        self._url = url if parts.scheme in ("https", "http") else ""
        self.host = parts.hostname or "?"
        self.timeout_seconds = timeout_seconds
        self.logger = logger or get_logger("slack")

    def __repr__(self) -> str:  # never the URL: it carries the token
        return f"SlackWebhookNotifier(host={self.host!r}, timeout_seconds={self.timeout_seconds})"

    def notify(self, alert: Alert) -> NotificationResult:
        result = self._post(json.dumps(slack_message(alert)).encode())
        if not result.delivered:
            self.logger.warning(
                "alert not delivered to Slack",
                labels={"alert": alert.title},
                host=self.host,
                detail=result.detail,
            )
        return result

    def _post(self, body: bytes) -> NotificationResult:
        if not self._url:
            return NotificationResult(False, "malformed webhook URL (not http or https)")
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked in __init__
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310
                status = response.status
                response.read(MAX_DETAIL_BODY)
        except urllib.error.HTTPError as error:  # a status, but not 2xx
            answer = error.read(MAX_DETAIL_BODY).decode("utf-8", "replace").strip()
            return NotificationResult(
                False, f"HTTP {error.code}: {answer}" if answer else f"HTTP {error.code}"
            )
        except TimeoutError:
            return NotificationResult(False, f"timeout after {self.timeout_seconds:g} s")
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, TimeoutError):
                return NotificationResult(False, f"timeout after {self.timeout_seconds:g} s")
            return NotificationResult(False, f"unreachable: {type(reason).__name__}: {reason}")
        except ValueError:  # a malformed URL; its text would quote the URL
            return NotificationResult(False, "malformed webhook URL")
        except OSError as error:  # reset or closed mid-answer
            return NotificationResult(False, f"{type(error).__name__}: {error}")
        if 200 <= status < 300:
            return NotificationResult(True)
        return NotificationResult(False, f"HTTP {status}")


class DisabledNotifier:
    """No Slack configured: nothing is sent, and the result says so."""

    enabled = False

    def notify(self, alert: Alert) -> NotificationResult:
        del alert
        return NotificationResult(False, "no Slack webhook configured (SHOPML_SLACK_WEBHOOK_URL)")


def notifier_from_settings(settings: Settings, logger: StructuredLogger | None = None) -> AlertNotifier:
    """Slack when ``SHOPML_SLACK_WEBHOOK_URL`` is set, otherwise a notifier that sends nothing."""
    if not settings.slack_webhook_url:
        return DisabledNotifier()
    return SlackWebhookNotifier(
        settings.slack_webhook_url, timeout_seconds=settings.slack_timeout_seconds, logger=logger
    )
