"""``AsyncOnlineFeatures``: predict's feature read on the event loop, against a real loopback
HTTP server (the client speaks HTTP/1.1 itself, so framing, keep-alive and failures are
exercised on real sockets), with the same answers and failures as the blocking client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.features.online import (
    AsyncOnlineFeatures,
    FeatureServerUnavailable,
    IdTokenAuth,
    OnlineFeatures,
    parse_response,
)
from shared.serving import predict_app
from shared.serving.forecast import ONLINE_FEATURES
from tests.unit.test_online_features import ASKED, REAL_RESPONSE, FakeSession


@dataclass
class Seen:
    request_line: str
    headers: dict[str, str]
    body: Any


def ok(body: Any, extra: str = "") -> bytes:
    payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
    )
    return head.encode() + payload


def status(code: int, body: bytes) -> bytes:
    return f"HTTP/1.1 {code} Nope\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def chunked(body: Any) -> bytes:
    payload = json.dumps(body).encode()
    half = len(payload) // 2
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (payload[:half], payload[half:])
    )
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


Reply = Callable[[Seen], bytes | None]  # the answer's bytes; None: never answer


@dataclass
class Server:
    """A loopback HTTP/1.1 server answering each request with ``reply`` (keep-alive unless the
    answer says ``Connection: close`` or ``close_after`` is set)."""

    reply: Reply
    close_after: bool = False
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
                seen = Seen(lines[0], headers, body)
                self.seen.append(seen)
                answer = self.reply(seen)
                if answer is None:
                    await asyncio.sleep(3600)
                    return
                writer.write(answer)
                await writer.drain()
                if self.close_after or b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the test is over
        finally:
            writer.close()


def run(reply: Reply, test: Callable[[str, Server], Awaitable[None]], **options: Any) -> Server:
    server = Server(reply, **options)

    async def main() -> None:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        async with listening:
            await test(f"http://127.0.0.1:{server.port}", server)

    asyncio.run(main())
    return server


def test_a_read_asks_what_the_blocking_client_asks_and_parses_the_same_answer() -> None:
    async def test(url: str, server: Server) -> None:
        client = AsyncOnlineFeatures(url + "/", 50)
        found = await client.read([1, 2, 3, 1], ASKED)  # a repeated id is asked once
        assert found == parse_response(REAL_RESPONSE, [1, 2, 3], ASKED)
        seen = server.seen[0]
        assert seen.request_line == "POST /get-online-features HTTP/1.1"
        assert seen.headers["host"] == f"127.0.0.1:{server.port}"
        assert seen.headers["content-type"] == "application/json"
        assert "authorization" not in seen.headers  # plain http: no ID token
        assert seen.body == {
            "entities": {"variant_id": [1, 2, 3]},
            "features": [
                "variant_history:lag_1",
                "variant_history:lag_7",
                "variant_history:product_type",
                "variant_state:price",
                "variant_state:inventory_on_hand",
            ],
            "full_feature_names": True,
        }
        # The blocking client sends the very same body.
        session = FakeSession(REAL_RESPONSE)
        assert OnlineFeatures(url, 50, session=session).read([1, 2, 3, 1], ASKED) == found
        assert session.requests[0][1] == seen.body

    run(lambda _: ok(REAL_RESPONSE), test)


def test_reads_reuse_one_keep_alive_connection() -> None:
    async def test(url: str, server: Server) -> None:
        client = AsyncOnlineFeatures(url, 50)
        for _ in range(5):
            await client.read([1, 2, 3], ASKED)

    assert run(lambda _: ok(REAL_RESPONSE), test).connections == 1


def test_a_connection_the_server_closed_is_replaced_and_the_read_succeeds() -> None:
    async def test(url: str, server: Server) -> None:
        client = AsyncOnlineFeatures(url, 500)
        await client.read([1, 2, 3], ASKED)
        await asyncio.sleep(0.05)  # the server has closed it by now
        assert (await client.read([1, 2, 3], ASKED))[1]["price"].value == 10.0

    server = run(lambda _: ok(REAL_RESPONSE), test, close_after=True)
    assert server.connections == 2 and len(server.seen) == 2


def test_connection_close_is_honoured_and_chunked_answers_are_read() -> None:
    async def test(url: str, server: Server) -> None:
        client = AsyncOnlineFeatures(url, 500)
        assert await client.read([1, 2, 3], ASKED) == parse_response(REAL_RESPONSE, [1, 2, 3], ASKED)
        assert await client.read([1, 2, 3], ASKED) == parse_response(REAL_RESPONSE, [1, 2, 3], ASKED)

    answers = iter([ok(REAL_RESPONSE, "Connection: close\r\n"), chunked(REAL_RESPONSE)])
    assert run(lambda _: next(answers), test).connections == 2


@pytest.mark.parametrize(
    "reply",
    [
        lambda _: None,  # never answers: the timeout
        lambda _: status(500, b'{"detail": "boom"}'),
        lambda _: status(404, b'{"detail": "Feature view variant_state does not exist"}'),
        lambda _: ok(b"<html>proxy error</html>"),
        lambda _: ok({"results": []}),
        lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{}",  # cut short
    ],
    ids=["timeout", "500", "404-not-applied", "not-json", "wrong-shape", "truncated"],
)
def test_every_failure_is_one_transient_error_within_the_timeout(reply: Reply) -> None:
    async def test(url: str, server: Server) -> None:
        client = AsyncOnlineFeatures(url, 50)
        started = asyncio.get_running_loop().time()
        with pytest.raises(FeatureServerUnavailable):
            await client.read([1], ["price"])
        assert asyncio.get_running_loop().time() - started < 1.0

    run(reply, test, close_after=True)


def test_a_refused_connection_is_a_transient_error() -> None:
    async def test(url: str, server: Server) -> None:
        pass

    port = run(lambda _: None, test).port  # closed again: nothing listens there now

    async def refused() -> None:
        with pytest.raises(FeatureServerUnavailable):
            await AsyncOnlineFeatures(f"http://127.0.0.1:{port}", 50).read([1], ["price"])

    asyncio.run(refused())


def test_an_id_token_is_sent_and_a_refused_one_replaced_once() -> None:
    tokens = iter(["old", "new", "newer"])
    auth = IdTokenAuth("https://fs.example", fetch=lambda _: next(tokens))
    answers = iter([status(401, b"{}"), ok(REAL_RESPONSE), status(403, b"{}"), status(403, b"{}")])

    async def test(url: str, server: Server) -> None:
        client = AsyncOnlineFeatures(url, 500, auth=auth)
        await client.read([1, 2, 3], ASKED)  # 401, then a fresh token
        with pytest.raises(FeatureServerUnavailable, match="403"):
            await client.read([1, 2, 3], ASKED)  # refused twice: the error stands

    server = run(lambda _: next(answers), test)
    assert [seen.headers["authorization"] for seen in server.seen] == [
        "Bearer old",
        "Bearer new",
        "Bearer new",
        "Bearer newer",
    ]


def test_a_client_used_from_a_new_event_loop_opens_new_connections() -> None:
    client: AsyncOnlineFeatures | None = None

    async def first(url: str, server: Server) -> None:
        nonlocal client
        client = AsyncOnlineFeatures(url, 500)
        await client.read([1, 2, 3], ASKED)
        # Same server, another loop (a test client runs each request in a loop of its own).
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def other_loop() -> None:
            assert client is not None
            asyncio.run(client.read([1, 2, 3], ASKED))
            done.get_loop().call_soon_threadsafe(done.set_result, None)

        await asyncio.gather(asyncio.to_thread(other_loop), done)

    assert run(lambda _: ok(REAL_RESPONSE), first).connections == 2


def test_predict_awaits_an_async_reader_and_runs_a_blocking_one_in_a_thread() -> None:
    found = parse_response(REAL_RESPONSE, [1, 2, 3], ASKED)
    threads: list[bool] = []

    def blocking(ids: list[int], features: tuple[str, ...]) -> Any:
        threads.append(True)
        assert features == ONLINE_FEATURES
        return found

    async def on_the_loop(ids: list[int], features: tuple[str, ...]) -> Any:
        assert features == ONLINE_FEATURES
        return found

    async def main() -> None:
        assert await predict_app.read_features(blocking, [1, 2, 3]) == found
        assert await predict_app.read_features(on_the_loop, [1, 2, 3]) == found

    asyncio.run(main())
    assert threads == [True]
