"""A stand-in for Pub/Sub in the ingest benchmark: the ``google.pubsub.v1.Publisher/Publish`` RPC
over gRPC (plaintext, loopback), answered at once with one fresh message id per message.

It is not Pub/Sub and stores nothing: it answers in a fraction of a millisecond with little CPU,
so ``ingest_webhook`` measured against it shows the function's own latency and throughput,
without the co-located Java emulator's (bench/RESULTS.md, Step 6b). Loss is measured against
the real emulator only. ``python -m bench.pubsub_stand_in PORT``; it prints how many messages
it answered when stopped (SIGTERM).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys


async def serve(port: int) -> None:
    import grpc
    import grpc.aio
    from google.pubsub_v1 import types

    request_cls = types.PublishRequest.pb()
    response_cls = types.PublishResponse.pb()
    ids = itertools.count(1)
    answered = 0

    async def publish(request: object, context: object) -> object:
        nonlocal answered
        count = len(request.messages)  # type: ignore[attr-defined]
        answered += count
        return response_cls(message_ids=[str(next(ids)) for _ in range(count)])

    handler = grpc.method_handlers_generic_handler(
        "google.pubsub.v1.Publisher",
        {
            "Publish": grpc.unary_unary_rpc_method_handler(
                publish,
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString,
            )
        },
    )
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(grace=1)
    print(f"answered {answered} messages", flush=True)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
