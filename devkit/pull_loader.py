"""The batching path of validation and load: pull many messages, write them in one unit.

Push delivers one message per HTTP request. The official Pub/Sub emulator keeps only about
two push requests outstanding per subscription, and a DuckDB commit costs ~10 ms, so the
push path tops out near 60-150 events/s locally (bench/RESULTS.md). (Cloud Pub/Sub raises
push concurrency by slow start and BigQuery streams in parallel, so push scales there.)

This loader pulls up to ``max_messages`` at once from the same subscription (same dead-letter
policy), plans each with the same pure ``plan_load``, writes all of them in one
``write_batch`` (one DuckDB transaction), and only then acknowledges them. A permanent write
error is isolated event by event and quarantined (``store_plan``); a transient one nacks the
whole batch for redelivery. Nothing is acknowledged before it is stored.

``python -m devkit.pull_loader`` runs it until Ctrl-C; ``LocalStack(load_mode="pull")`` runs it
instead of the push-triggered validate_load.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.errors import PermanentError, TransientError
from shared.loading import RowIds, Rows, log_outcome, run_after_load, store_plan
from shared.logs import StructuredLogger, get_logger
from shared.ports import Warehouse
from shared.settings import Settings, get_settings
from shared.validation import LoadPlan, plan_load

DEFAULT_SUBSCRIPTION = "shopify-events-validate-load"


@dataclass
class BatchStats:
    pulled: int = 0
    loaded: int = 0
    quarantined: int = 0
    redelivered: int = 0


def merge(plans: list[LoadPlan]) -> tuple[Rows, RowIds]:
    rows: Rows = {}
    ids: RowIds = {}
    for plan in plans:
        plan_rows, plan_ids = plan.writes()
        for table, table_rows in plan_rows.items():
            rows.setdefault(table, []).extend(table_rows)
            ids.setdefault(table, []).extend(plan_ids[table])
    return rows, ids


def store_batch(
    plans: list[LoadPlan], warehouse: Warehouse, now: datetime
) -> list[LoadPlan | TransientError]:
    """Write every plan in one batch; isolate permanent failures; transient ones fail all."""
    try:
        warehouse.write_batch(*merge(plans))
        return list(plans)
    except TransientError as exc:
        return [exc] * len(plans)
    except PermanentError:
        return [_store_alone(plan, warehouse, now) for plan in plans]  # isolate the bad event(s)
    except Exception as exc:  # unexpected: keep the messages (nack), keep the loader running
        return [TransientError(f"{type(exc).__name__}: {exc}")] * len(plans)


def _store_alone(plan: LoadPlan, warehouse: Warehouse, now: datetime) -> LoadPlan | TransientError:
    try:
        return store_plan(plan, warehouse.write_batch, now)
    except TransientError as exc:
        return exc
    except Exception as exc:  # see store_batch
        return TransientError(f"{type(exc).__name__}: {exc}")


class LazyWarehouse:
    """A warehouse built on first use (a broken one must only nack batches, not stop the
    loader from starting), shared by the loader and its post-load hook."""

    def __init__(self, factory: Callable[[], Warehouse]) -> None:
        self._factory = factory
        self._built: Warehouse | None = None
        self._lock = threading.Lock()

    def get(self) -> Warehouse:
        with self._lock:
            if self._built is None:
                self._built = self._factory()
            return self._built

    def ensure_schema(self) -> None:
        self.get().ensure_schema()

    def insert_rows(
        self, table: str, rows: Sequence[Mapping[str, Any]], row_ids: Sequence[str] | None = None
    ) -> None:
        self.get().insert_rows(table, rows, row_ids)

    def write_batch(
        self,
        rows_by_table: Mapping[str, Sequence[Mapping[str, Any]]],
        row_ids_by_table: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.get().write_batch(rows_by_table, row_ids_by_table)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.get().query(sql, params)


class PullLoader:
    """Pulls batches from a subscription and loads them (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        warehouse_factory: Callable[[], Warehouse],
        logger: StructuredLogger,
        *,
        subscription: str = DEFAULT_SUBSCRIPTION,
        max_messages: int = 500,
        on_loaded: Callable[[LoadPlan], None] | None = None,
    ) -> None:
        from shared.adapters.pubsub import admin_clients

        self.settings = settings
        self._warehouse_factory = warehouse_factory
        self._warehouse: Warehouse | None = None
        self.logger = logger
        self.path = settings.subscription_path(subscription)
        self.max_messages = max_messages
        self.on_loaded = on_loaded  # e.g. the feature push, as validate_load runs it
        self._publisher, self.subscriber = admin_clients(settings)

    def run_once(self, timeout_s: float = 0.5) -> BatchStats:
        from google.api_core import exceptions

        stats = BatchStats()
        try:
            response = self.subscriber.pull(
                subscription=self.path, max_messages=self.max_messages, timeout=timeout_s
            )
        except (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable):
            return stats
        received = list(response.received_messages)
        if not received:
            return stats
        stats.pulled = len(received)
        now = datetime.now(UTC)
        plans = [self._plan(m.message, now) for m in received]
        try:
            if self._warehouse is None:  # built on first use: a broken one only nacks batches
                self._warehouse = self._warehouse_factory()
            outcomes = store_batch(plans, self._warehouse, now)
        except Exception as exc:
            outcomes = [TransientError(f"{type(exc).__name__}: {exc}")] * len(plans)
        done = [
            m.ack_id for m, o in zip(received, outcomes, strict=True) if not isinstance(o, TransientError)
        ]
        retry = [m.ack_id for m, o in zip(received, outcomes, strict=True) if isinstance(o, TransientError)]
        if done:
            self.subscriber.acknowledge(subscription=self.path, ack_ids=done)
        if retry:  # nack: redelivered with the subscription's backoff, dead-lettered after its attempts
            self.subscriber.modify_ack_deadline(subscription=self.path, ack_ids=retry, ack_deadline_seconds=0)
            self.logger.error(
                "transient failure; batch part nacked", count=len(retry), reason=str(outcomes[0])
            )
        for outcome in outcomes:
            if isinstance(outcome, LoadPlan):
                stats.loaded += not outcome.rejected
                stats.quarantined += outcome.rejected
                if outcome.rejected:
                    log_outcome(outcome, self.logger)
                elif self.on_loaded is not None:
                    run_after_load(self.on_loaded, outcome, self.logger)
        stats.redelivered = len(retry)
        self.logger.info(
            "batch loaded",
            pulled=stats.pulled,
            loaded=stats.loaded,
            quarantined=stats.quarantined,
            redelivered=stats.redelivered,
        )
        return stats

    def _plan(self, message: Any, now: datetime) -> LoadPlan:
        publish_time = message.publish_time if isinstance(message.publish_time, datetime) else None
        return plan_load(
            dict(message.attributes),
            bytes(message.data),
            message.message_id,
            publish_time,
            now,
            self.settings.store_pii,
            self.settings.pii_hash_key,
        )

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()

    def close(self) -> None:
        self.subscriber.close()
        self._publisher.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.pull_loader", description=__doc__.split("\n")[0])
    parser.add_argument("--subscription", default=DEFAULT_SUBSCRIPTION)
    parser.add_argument("--max-messages", type=int, default=500)
    parser.add_argument("--once", action="store_true", help="one pull, then exit")
    args = parser.parse_args(argv)
    settings = get_settings()
    from shared.bootstrap import create_warehouse
    from shared.features.push import state_push_hook

    logger = get_logger("pull_loader", settings.log_level)
    warehouse = LazyWarehouse(lambda: create_warehouse(settings))  # shared with the stock lookups
    loader = PullLoader(
        settings,
        warehouse.get,
        logger,
        subscription=args.subscription,
        max_messages=args.max_messages,
        on_loaded=state_push_hook(settings, warehouse, logger),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        if args.once:
            loader.run_once()
        else:
            loader.run(stop)
    finally:
        loader.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
