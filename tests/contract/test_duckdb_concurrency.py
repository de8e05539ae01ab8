"""DuckDB only: many threads in one process, other processes on the same file, lock errors.

DuckDB lets one process at a time open a file read-write; the adapter shares one instance among
threads, releases the file when idle, yields it to a waiting process, and turns a lock held for
too long into TransientError (see shared/adapters/duckdb_warehouse.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from shared.adapters.duckdb_warehouse import DuckDBWarehouse
from shared.errors import TransientError
from shared.settings import REPO_ROOT
from tests.contract.conftest import contract_schema

SCHEMA = contract_schema()


def _entity(i: int, webhook: str = "wh") -> dict[str, object]:
    return {
        "shop_domain": "alpha.myshopify.com",
        "id": i,
        "name": f"e{i}",
        "price": Decimal("1.10"),
        "updated_at": datetime(2025, 3, 1, tzinfo=UTC),
        "webhook_id": f"{webhook}-{i}",
        "received_at": datetime(2025, 3, 1, tzinfo=UTC),
    }


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


HOLD_LOCK = """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])   # a plain DuckDB client: it holds the file and never yields
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
"""


def test_a_file_locked_by_another_process_raises_transient_error_after_bounded_retries(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.duckdb"
    DuckDBWarehouse(path, SCHEMA, idle_close_seconds=0).ensure_schema()  # create, then release the file
    holder = _python(HOLD_LOCK, str(path), "30")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        warehouse = DuckDBWarehouse(path, SCHEMA, lock_timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(TransientError, match="locked by another process"):
            warehouse.insert_rows("contract_entities", [_entity(1)])
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 5, elapsed
        with pytest.raises(TransientError):
            warehouse.query("SELECT COUNT(*) AS n FROM contract_entities")
        assert warehouse.stats["lock_retries"] > 3  # it retried, with backoff, before giving up
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: the same warehouse object now works (Pub/Sub's redelivery would succeed).
    warehouse.insert_rows("contract_entities", [_entity(1)])
    assert warehouse.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 1}]


def test_an_idle_warehouse_releases_the_file_for_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "idle.duckdb"
    warehouse = DuckDBWarehouse(path, SCHEMA, idle_close_seconds=0.1)
    warehouse.insert_rows("contract_entities", [_entity(1), _entity(2)])
    time.sleep(0.4)
    reader = _python(
        """
        import sys, duckdb
        con = duckdb.connect(sys.argv[1], read_only=True)
        print(con.execute("SELECT COUNT(*) FROM contract_entities").fetchone()[0])
        """,
        str(path),
    )
    out, err = reader.communicate(timeout=30)
    assert reader.returncode == 0, err
    assert out.strip() == "2"
    # ...and takes it back on the next use.
    warehouse.insert_rows("contract_entities", [_entity(3)])
    assert warehouse.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 3}]


WAITING_WRITER = """
    import sys, time
    from datetime import UTC, datetime
    from shared.adapters.duckdb_warehouse import DuckDBWarehouse
    from tests.contract.conftest import contract_schema
    warehouse = DuckDBWarehouse(sys.argv[1], contract_schema(), lock_timeout_seconds=8)
    started = time.monotonic()
    warehouse.insert_rows("contract_entities", [{
        "shop_domain": "other-process", "id": 1, "webhook_id": "x",
        "received_at": datetime(2025, 3, 1, tzinfo=UTC)}])
    n = warehouse.query(
        "SELECT COUNT(*) AS n FROM contract_entities WHERE shop_domain = 'other-process'")[0]["n"]
    print(n, round(time.monotonic() - started, 2), flush=True)
"""


def test_a_busy_writer_yields_the_file_to_a_waiting_process(tmp_path: Path) -> None:
    path = tmp_path / "busy.duckdb"
    warehouse = DuckDBWarehouse(path, SCHEMA, min_hold_seconds=0.3, lock_timeout_seconds=8)
    warehouse.ensure_schema()
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0]

    def keep_writing() -> None:  # never idle: without yielding, the file would never be released
        while not stop.is_set():
            try:
                warehouse.insert_rows("contract_entities", [_entity(written[0], "busy")])
                written[0] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    writers = [threading.Thread(target=keep_writing) for _ in range(4)]
    for t in writers:
        t.start()
    try:
        time.sleep(0.5)
        other = _python(WAITING_WRITER, str(path))
        out, err = other.communicate(timeout=60)
    finally:
        stop.set()
        for t in writers:
            t.join()
    assert other.returncode == 0, err
    count, seconds = out.split()
    assert count == "1"
    assert float(seconds) < 5, f"the waiting process needed {seconds} s"
    assert not errors, errors
    assert warehouse.stats["yields"] >= 1
    assert warehouse.query(
        "SELECT COUNT(*) AS n FROM contract_entities WHERE shop_domain = 'alpha.myshopify.com'"
    ) == [{"n": written[0]}]


def test_eight_threads_share_one_database_and_lose_nothing(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "threads.duckdb", SCHEMA)
    warehouse.ensure_schema()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(40):
                warehouse.write_batch(
                    {
                        "contract_entities": [_entity(k * 1000 + i)],
                        "contract_types": [{"id": k * 1000 + i, "lines": [{"sku": "a"}] * 5}],
                    }
                )
                if i % 10 == 0:
                    warehouse.query("SELECT COUNT(*) AS n FROM contract_entities_latest")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert warehouse.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 320}]
    assert warehouse.query("SELECT COUNT(*) AS n FROM contract_types") == [{"n": 320}]
    assert warehouse.stats["opens"] >= 1


def test_a_bad_event_in_a_group_fails_alone(tmp_path: Path) -> None:
    """Events written together in one group commit still succeed or fail one by one."""
    warehouse = DuckDBWarehouse(tmp_path / "group.duckdb", SCHEMA)
    warehouse.ensure_schema()
    with warehouse.connection() as cursor:  # make the database (not conform_rows) refuse one value
        cursor.execute("DROP VIEW contract_entity_totals")
        cursor.execute("DROP VIEW contract_entities_latest")
        columns = ", ".join(
            f'"{c.name}" {c.duckdb_type()}' for c in SCHEMA.table("contract_entities").columns
        )
        cursor.execute(f"CREATE OR REPLACE TABLE contract_entities ({columns}, CHECK (id >= 0))")
    outcomes: dict[int, BaseException | None] = {}
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            warehouse.write_batch(
                {"contract_entities": [_entity(-1 if i == 3 else i)], "contract_types": [{"id": i}]}
            )
            outcomes[i] = None
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = {i: e for i, e in outcomes.items() if e is not None}
    assert list(failed) == [3], failed
    assert "contract_entities" in str(failed[3])
    assert warehouse.query("SELECT id FROM contract_types ORDER BY id") == [
        {"id": i} for i in range(8) if i != 3
    ]


def test_in_memory_warehouses_are_separate_and_never_closed_when_idle() -> None:
    first = DuckDBWarehouse(":memory:", SCHEMA, idle_close_seconds=0)
    second = DuckDBWarehouse(":memory:", SCHEMA)
    first.insert_rows("contract_entities", [_entity(1)])
    time.sleep(0.05)
    assert first.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 1}]
    assert second.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 0}]


def test_a_connection_declared_broken_is_reopened_once_free(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "broken.duckdb", SCHEMA, idle_close_seconds=30)
    warehouse.insert_rows("contract_entities", [_entity(1)])
    opens = warehouse.stats["opens"]
    with warehouse.connection():
        warehouse._db.invalidate()  # as after a FatalException: a cursor is still out
        assert warehouse.stats["closes"] == 0
    warehouse.insert_rows("contract_entities", [_entity(2)])
    assert warehouse.stats["opens"] == opens + 1
    assert warehouse.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 2}]


def test_the_same_rows_written_from_eight_threads_at_once_land_once(tmp_path: Path) -> None:
    """Redeliveries racing each other: whichever transaction commits first writes the rows;
    the others (grouped with it, or in the other writer thread) add nothing and do not fail."""
    warehouse = DuckDBWarehouse(tmp_path / "races.duckdb", SCHEMA)
    warehouse.ensure_schema()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        barrier.wait()
        try:
            for i in range(30):  # every thread writes the same 30 events, and one of its own
                for key in (i, 10_000 + k * 100 + i):
                    warehouse.write_batch(
                        {"contract_entities": [_entity(key)], "contract_types": [{"id": key}]},
                        {"contract_entities": [f"e-{key}"], "contract_types": [f"t-{key}"]},
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for table in ("contract_entities", "contract_types"):
        rows = warehouse.query(f"SELECT id, COUNT(*) AS n FROM {table} GROUP BY id")  # noqa: S608 - fixture names
        assert len(rows) == 30 + 8 * 30 and {r["n"] for r in rows} == {1}, table


def test_a_file_made_before_row_ids_were_kept_opens_and_skips_repeats_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as old:  # what earlier versions created: the tables, no ledger
        columns = ", ".join(
            f'"{c.name}" {c.duckdb_type()}' for c in SCHEMA.table("contract_entities").columns
        )
        old.execute(f"CREATE TABLE contract_entities ({columns})")
        old.execute("INSERT INTO contract_entities (shop_domain, id, webhook_id) VALUES ('a', 1, 'old')")
    warehouse = DuckDBWarehouse(path, SCHEMA)
    for _ in range(2):
        warehouse.insert_rows("contract_entities", [_entity(2)], row_ids=["e-2"])
    rows = warehouse.query("SELECT id FROM contract_entities ORDER BY id")
    assert rows == [{"id": 1}, {"id": 2}]  # the old row kept, the new one written once
    warehouse.close()


def test_rows_without_ids_always_append(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "no-ids.duckdb", SCHEMA)
    warehouse.insert_rows("contract_entities", [_entity(1), _entity(1)])
    warehouse.write_batch({"contract_entities": [_entity(1)]})
    assert warehouse.query("SELECT COUNT(*) AS n FROM contract_entities") == [{"n": 3}]


def test_no_thread_is_left_calling_duckdb_when_the_process_exits(tmp_path: Path) -> None:
    """DuckDB's binding aborts the process (``terminate called without an active exception``)
    when another thread is inside a DuckDB call, or drops a connection, while the interpreter
    finalises. At exit the adapter stops its writer threads and joins its idle-close threads,
    which never hold a connection of their own."""
    script = textwrap.dedent(
        f"""
        import threading
        from shared.adapters import duckdb_warehouse as dw
        w = dw.DuckDBWarehouse({str(tmp_path / "exit.duckdb")!r}, idle_close_seconds=0.2)
        w.insert_rows("raw_events", [{{"message_id": "m", "received_at": "2025-03-01T00:00:00Z",
            "attributes_json": "{{}}", "body": "{{}}", "body_encoding": "utf-8", "body_sha256": "x",
            "status": "loaded", "loaded_at": "2025-03-01T00:00:00Z"}}], ["m"])
        w.close()
        dw._close_all()  # what atexit runs
        left = [t.name for t in threading.enumerate() if t.name.startswith(("duckdb-", "import-write"))]
        print("left:", left)
        """
    )
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().endswith("left: []"), done.stdout
