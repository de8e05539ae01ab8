"""The Admin API client against the stand-in: pagination, pacing before throttling, the call
ceiling, retries with backoff on 429/5xx/THROTTLED/timeouts, tokens kept out of sight."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator

import pytest

from devkit.shopify_standin import StandIn
from shared.adapters.shopify_admin import (
    AdminApiError,
    AdminApiUnavailable,
    CallCeiling,
    CostPacer,
    ShopifyAdmin,
    admin_client,
    graphql_endpoint,
    secret_id,
    token_for,
)
from shared.errors import ConfigurationError
from shared.settings import Settings
from tests.standin import SHOP, TOKEN, post, simulated_stand_in

ORDERS = """query($after: String) { orders(first: 20, after: $after) {
  nodes { id lineItems(first: 5) { nodes { id } } } pageInfo { hasNextPage endCursor } } }"""


class FakeTime:
    """A clock and a sleep that advance together (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    server, _ = simulated_stand_in()
    yield server
    server.stop()


def client(standin: StandIn, **kwargs: object) -> ShopifyAdmin:
    return ShopifyAdmin(SHOP, TOKEN, admin_url=standin.url, rng=random.Random(1), **kwargs)  # type: ignore[arg-type]


def test_endpoint_comes_from_the_library_session() -> None:
    admin = ShopifyAdmin(SHOP, "t", api_version="2025-10")
    assert admin.endpoint == f"https://{SHOP}/admin/api/2025-10/graphql.json"
    assert (
        graphql_endpoint(admin.session, "http://127.0.0.1:9")
        == "http://127.0.0.1:9/admin/api/2025-10/graphql.json"
    )
    assert "token" not in repr(admin)


def test_pagination_returns_every_order(standin: StandIn) -> None:
    admin = client(standin)
    ids = [o["id"] for o in admin.paginate(ORDERS, {}, ("orders",))]
    assert len(ids) == len(set(ids)) == len(standin.state.shops[SHOP].orders)
    assert admin.stats.calls == -(-len(ids) // 20)
    assert admin.stats.requested_points > admin.stats.actual_points > 0


def test_pacing_waits_before_the_bucket_runs_dry() -> None:
    # A small bucket (200 points, 1,000/s) and queries of 2 + 20 x 7 = 142 points requested:
    # without pacing the second call would be throttled.
    standin, _ = simulated_stand_in(maximum_available=200, restore_rate=1000)
    try:
        admin = client(standin)
        for _ in range(2):
            list(admin.paginate(ORDERS, {}, ("orders",)))
        assert standin.stats[SHOP].throttled == 0
        assert admin.stats.throttled == 0 and admin.stats.paced_seconds > 0
    finally:
        standin.stop()


def test_a_throttled_answer_is_waited_out_and_retried(standin: StandIn) -> None:
    # Someone else emptied the bucket: this client's pacer could not know.
    standin._buckets[SHOP].take(standin._buckets[SHOP].available() - 5)
    admin = client(standin)
    data = admin.execute("{ orders(first: 10) { nodes { id } } }")
    assert len(data["orders"]["nodes"]) == 10
    assert admin.stats.throttled >= 1 and admin.stats.retries >= 1


def test_429_and_5xx_are_retried_with_backoff(standin: StandIn) -> None:
    fake = FakeTime()
    standin.fail_next(429, retry_after=2.0)
    standin.fail_next(503)
    admin = client(standin, sleep=fake.sleep, clock=fake.clock)
    assert admin.execute("{ shop { name } }")["shop"]["name"] == "shopml-demo"
    assert admin.stats.retries == 2 and admin.stats.calls == 3
    assert fake.slept[0] >= 2.0  # Retry-After honoured
    assert 0 <= fake.slept[1] <= 1.0  # full jitter over 0.5 s x 2^1


def test_retries_end_in_a_transient_error(standin: StandIn) -> None:
    fake = FakeTime()
    standin.fail_next(500, count=3)
    admin = client(standin, sleep=fake.sleep, clock=fake.clock, max_retries=2)
    with pytest.raises(AdminApiUnavailable, match="HTTP 500"):
        admin.execute("{ shop { name } }")
    assert admin.stats.calls == 3


def test_a_server_that_never_answers_times_out() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # accepted, never answered
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    port = listener.getsockname()[1]
    admin = ShopifyAdmin(
        SHOP, TOKEN, admin_url=f"http://127.0.0.1:{port}", timeout=0.2, max_retries=1, sleep=lambda s: None
    )
    try:
        with pytest.raises(AdminApiUnavailable, match="no answer") as raised:
            admin.execute("{ shop { name } }")
        assert TOKEN not in str(raised.value)
    finally:
        stop.set()
        listener.close()
        for conn in held:
            conn.close()


def test_graphql_errors_and_bad_tokens_are_permanent(standin: StandIn) -> None:
    with pytest.raises(AdminApiError, match="401") as raised:
        ShopifyAdmin(SHOP, "wrong-token", admin_url=standin.url).execute("{ shop { name } }")
    assert "wrong-token" not in str(raised.value)
    with pytest.raises(AdminApiError, match="Cannot query field") as bad:
        client(standin).execute("{ shop { nope } }")
    assert bad.value.errors


def test_the_ceiling_holds_calls_per_minute() -> None:
    fake = FakeTime()
    ceiling = CallCeiling(5, clock=fake.clock, sleep=fake.sleep)
    stamps = []
    for _ in range(17):
        ceiling.acquire()
        stamps.append(fake.now)
    for i, start in enumerate(stamps):
        assert sum(1 for s in stamps[i:] if s < start + 60.0) <= 5
    assert stamps[-1] >= 180.0


def test_the_ceiling_applies_to_client_calls(standin: StandIn) -> None:
    fake = FakeTime()
    admin = client(standin, ceiling=CallCeiling(3, clock=fake.clock, sleep=fake.sleep))
    for _ in range(7):
        admin.execute("{ shop { name } }")
    assert admin.stats.ceiling_seconds == pytest.approx(120.0)


def test_pacer_projects_the_bucket() -> None:
    fake = FakeTime()
    pacer = CostPacer(fake.clock)
    assert pacer.delay_for(500) == 0.0  # nothing known yet
    pacer.observe({"currentlyAvailable": 100, "maximumAvailable": 2000, "restoreRate": 100})
    assert pacer.delay_for(300) == pytest.approx(2.0)
    fake.now += 1.0
    assert pacer.delay_for(300) == pytest.approx(1.0)
    assert pacer.delay_for(50) == 0.0


def test_tokens_from_settings_or_secret_manager() -> None:
    local = Settings.from_env({"SHOPML_SHOPIFY_ACCESS_TOKENS": f"{SHOP}=shpat_local_secret"})
    assert token_for(SHOP, local) == "shpat_local_secret"
    assert "shpat_local_secret" not in repr(local)
    cloud = Settings.from_env(
        {"GOOGLE_CLOUD_PROJECT": "p1", "SHOPML_SHOPIFY_TOKEN_SECRET": "shopify-token-{shop}"}
    )
    asked: list[str] = []
    token = token_for(SHOP, cloud, lambda name: asked.append(name) or "from-secret")
    assert token == "from-secret"
    assert asked == [f"projects/p1/secrets/{secret_id('shopify-token-{shop}', SHOP)}/versions/latest"]
    assert secret_id("shopify-token-{shop}", SHOP) == "shopify-token-shopml-demo-myshopify-com"
    with pytest.raises(ConfigurationError, match="SHOPML_SHOPIFY_ACCESS_TOKENS"):
        token_for(SHOP, Settings.from_env({}))


def test_admin_client_from_settings(standin: StandIn) -> None:
    settings = Settings.from_env(
        {"SHOPML_SHOPIFY_ACCESS_TOKENS": f"{SHOP}={TOKEN}", "SHOPML_SHOPIFY_ADMIN_URL": standin.url}
    )
    admin = admin_client(SHOP, settings)
    assert admin.endpoint == f"{standin.url}/admin/api/2025-10/graphql.json"
    assert admin.ceiling is not None and admin.ceiling.per_minute == 1000
    assert admin.execute("{ shop { myshopifyDomain } }")["shop"]["myshopifyDomain"] == SHOP
    with pytest.raises(ConfigurationError):
        Settings.from_env({"SHOPML_SHOPIFY_API_VERSION": "2025-05"})
    assert post(standin, "{ shop { name } }")[0] == 200
