"""One error hierarchy; entry points map it to behaviour.

* ``PermanentError``: retrying cannot help (bad input, bad signature, a schema violation).
  Record it (answer 4xx, quarantine) and do not retry.
* ``TransientError``: the world may heal (a publish timed out, the warehouse is down).
  Answer 5xx / re-raise so the caller (Shopify, Pub/Sub) retries.
"""

from __future__ import annotations


class ShopmlError(Exception):
    """Root of every error shopml raises on purpose."""


class PermanentError(ShopmlError):
    """Retrying the same input will fail the same way."""


class TransientError(ShopmlError):
    """A dependency failed; the same input may succeed later."""


class ConfigurationError(PermanentError):
    """A setting is missing or malformed; the message names it and how to fix it."""


class WebhookRejected(PermanentError):
    """A webhook request that must not be accepted.

    ``status`` is the HTTP status to answer and ``code`` a short machine-readable reason.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class PublishFailed(TransientError):
    """Pub/Sub did not acknowledge a publish in time."""


class StreamingBufferBusy(TransientError):
    """BigQuery refused an UPDATE or DELETE: rows it would touch are still in the streaming
    buffer (up to about 30 minutes after ``insertAll``). Retry later; nothing was changed."""
