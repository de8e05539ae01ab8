"""``LivePointerStore`` on Firestore: one document per model, changed only inside a transaction.

Document ``<collection>/<model>`` holds ``LivePointer.to_dict()``. ``compare_and_swap`` reads
the document in a transaction and writes the new pointer only if its ``generation`` field is
still the expected one (0: no document yet); Firestore retries a transaction that met a
concurrent write, and the retry then sees the winner's generation and gives up, so of any
number of concurrent writers from the same generation exactly one wins. The client library
retries an aborted transaction at once; when writers keep aborting each other (seen on the
emulator with 8 writers on a loaded machine: 20 immediate attempts were not enough), the
whole transaction is run again after a jittered, growing pause (``retry_contended``). ``watch`` is a
snapshot listener (``predict`` uses it where CPU is always allocated; it still re-reads on age).

The client is created on first use, never at import. ``FIRESTORE_EMULATOR_HOST`` (settings'
``firestore_emulator_host``) points it at the official emulator with anonymous credentials.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.registry import check_model_name
from shared.serving.pointer import LivePointer

# Immediate attempts inside one transaction run (the library's default), then the run is
# repeated after a pause: full-jitter exponential backoff, from 50 ms up to 2 s per pause.
_TRANSACTION_ATTEMPTS = 5
_CONTENDED_ROUNDS = 10
_FIRST_PAUSE_SECONDS = 0.05
_LONGEST_PAUSE_SECONDS = 2.0


def retry_contended(
    run: Callable[[], bool],
    contended: Callable[[Exception], bool],
    *,
    rounds: int = _CONTENDED_ROUNDS,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> bool:
    """``run()``, again after a pause while it fails for contention, at most ``rounds`` times.

    The pause before round ``n`` (from 1) is ``jitter() * min(2 s, 50 ms * 2**n)``: writers
    that aborted each other spread out instead of colliding again. Any other error, or
    contention in the last round, is raised."""
    for round_number in range(rounds):
        try:
            return run()
        except Exception as exc:
            if not contended(exc) or round_number == rounds - 1:
                raise
        sleep(jitter() * min(_LONGEST_PAUSE_SECONDS, _FIRST_PAUSE_SECONDS * 2 ** (round_number + 1)))
    raise AssertionError("unreachable")  # pragma: no cover


def _contended(exc: Exception) -> bool:
    """A transaction aborted by a concurrent one (the library wraps its last Aborted in a
    ValueError when its own attempts run out)."""
    from google.api_core import exceptions as gexc

    return isinstance(exc, gexc.Aborted) or (
        isinstance(exc, ValueError) and isinstance(exc.__cause__, gexc.Aborted)
    )


def _translate(exc: Exception, what: str) -> Exception:
    from google.api_core import exceptions as gexc

    transient = (
        gexc.ServiceUnavailable,
        gexc.DeadlineExceeded,
        gexc.Aborted,
        gexc.InternalServerError,
        gexc.TooManyRequests,
        gexc.RetryError,
    )
    if isinstance(exc, transient) or _contended(exc):
        return TransientError(f"Firestore {what} failed, retry later: {exc}")
    return PermanentError(f"Firestore {what} failed: {exc}")


class FirestorePointerStore:
    """The live pointers in Firestore (``project``, ``database``, ``collection``)."""

    def __init__(
        self,
        project: str,
        database: str = "(default)",
        collection: str = "live_pointers",
        emulator_host: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.project = project
        self.database = database
        self.collection = collection
        self.emulator_host = emulator_host
        self.timeout_seconds = timeout_seconds
        self._client: Any = None
        self._lock = threading.Lock()

    def _db(self) -> Any:
        with self._lock:
            if self._client is None:
                from google.cloud import firestore

                if self.emulator_host:
                    from google.auth.credentials import AnonymousCredentials

                    client = firestore.Client(
                        project=self.project, database=self.database, credentials=AnonymousCredentials()
                    )
                    # The client reads the emulator's address from the environment only; the
                    # settings' value wins so that tests and the CLI can name it explicitly.
                    client._emulator_host = self.emulator_host
                else:
                    client = firestore.Client(project=self.project, database=self.database)
                self._client = client
            return self._client

    def _ref(self, model: str) -> Any:
        return self._db().collection(self.collection).document(check_model_name(model))

    def get(self, model: str) -> LivePointer:
        try:
            snapshot = self._ref(model).get(timeout=self.timeout_seconds)
        except PermanentError:
            raise
        except Exception as exc:
            raise _translate(exc, f"read of the live pointer of {model!r}") from exc
        return _pointer(model, snapshot)

    def compare_and_swap(self, model: str, expected_generation: int, new: LivePointer) -> bool:
        if new.model != model or new.generation != expected_generation + 1:
            raise PermanentError(
                f"a new pointer for {model!r} from generation {expected_generation} must be model "
                f"{model!r}, generation {expected_generation + 1} (got {new.model!r}, {new.generation})"
            )
        from google.cloud import firestore

        ref = self._ref(model)
        data = new.to_dict()

        @firestore.transactional
        def swap(transaction: Any) -> bool:
            snapshot = ref.get(transaction=transaction)
            current = int(snapshot.get("generation") or 0) if snapshot.exists else 0
            if current != expected_generation:
                return False
            transaction.set(ref, data)
            return True

        try:
            return retry_contended(
                lambda: bool(swap(self._db().transaction(max_attempts=_TRANSACTION_ATTEMPTS))), _contended
            )
        except Exception as exc:
            raise _translate(exc, f"compare-and-swap of the live pointer of {model!r}") from exc

    def watch(self, model: str, callback: Callable[[LivePointer], None]) -> Callable[[], None]:
        def on_snapshot(snapshots: list[Any], _changes: Any, _read_time: Any) -> None:
            for snapshot in snapshots[-1:]:
                callback(_pointer(model, snapshot))
            if not snapshots:
                callback(LivePointer(model))

        listener = self._ref(model).on_snapshot(on_snapshot)
        return listener.unsubscribe

    def delete(self, model: str) -> None:
        """Remove a model's pointer (tests and teardown; nothing in the serving path calls it)."""
        self._ref(model).delete()


def _pointer(model: str, snapshot: Any) -> LivePointer:
    if not snapshot.exists:
        return LivePointer(model)
    data = snapshot.to_dict() or {}
    try:
        return LivePointer.from_dict({**data, "model": data.get("model", model)})
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(f"the live pointer document of {model!r} is malformed: {exc}") from exc
