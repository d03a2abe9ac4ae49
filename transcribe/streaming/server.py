"""The caption WebSocket server: every caption and status message, as JSON, to every client.

Clients come and go freely. A client that connects gets a `hello` message, then the last final
captions (up to `replay`, so a screen that joins late or reconnects can fill in), then every
message as it happens. Each client has its own bounded queue: one that does not read fast enough
is disconnected (close code 1013) rather than slowing the others or growing memory. Clients are
not expected to send anything; what they send is read and ignored (at most 4 KiB a message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from http import HTTPStatus
from typing import Any, Callable

from transcribe.streaming.sources import _path, token_ok

log = logging.getLogger("transcribe")

__all__ = ["CaptionServer"]


class CaptionServer:
    """Broadcasts JSON messages to WebSocket clients at ws://HOST:PORT/ (or /captions)."""

    PATHS = ("/", "/captions")

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str | None = None,
        hello: Callable[[], dict[str, Any]] | None = None,
        replay: int = 50,
        client_queue: int = 1000,
    ):
        self.host, self.port = host, port
        self.token = token
        self.hello = hello or (lambda: {"type": "hello"})
        self.client_queue = client_queue
        self._recent: deque[str] = deque(maxlen=max(0, replay))
        self._clients: dict[Any, asyncio.Queue[str | None]] = {}
        self._server = None
        self.refused = 0
        self.dropped_clients = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def bound_port(self) -> int:
        return self._server.sockets[0].getsockname()[1] if self._server else self.port

    async def start(self) -> None:
        if self._server is not None:
            return
        from websockets.asyncio.server import serve

        try:
            self._server = await serve(
                self._handle, self.host, self.port, max_size=4096, max_queue=4,
                process_request=self._check, ping_interval=20, ping_timeout=20,
            )
        except OSError as exc:
            from transcribe.errors import UsageError

            raise UsageError(f"cannot serve captions on {self.host}:{self.port}: {exc.strerror or exc}") from None
        log.info("captions on ws://%s:%d/", self.host, self.bound_port)

    def _check(self, connection, request):
        if _path(request) not in self.PATHS:
            self.refused += 1
            return connection.respond(HTTPStatus.NOT_FOUND, "captions are at /\n")
        if not token_ok(self.token, request):
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a token is required: Authorization: Bearer TOKEN or ?token=TOKEN\n")
        return None

    def broadcast(self, message: dict[str, Any]) -> None:
        """Queue `message` for every client (never blocks); finals are kept for replay."""
        text = json.dumps(message, ensure_ascii=False)
        if message.get("type") == "final":
            self._recent.append(text)
        for ws, queue in list(self._clients.items()):
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                self.dropped_clients += 1
                log.warning("caption client %s is too slow: disconnected", ws.remote_address)
                self._clients.pop(ws, None)
                asyncio.ensure_future(ws.close(1013, "too slow: reconnect to catch up"))

    async def _handle(self, ws) -> None:
        from websockets.exceptions import ConnectionClosed

        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=self.client_queue + len(self._recent) + 1)
        hello = dict(self.hello())
        hello["replay"] = len(self._recent)
        queue.put_nowait(json.dumps(hello, ensure_ascii=False))
        for text in self._recent:
            queue.put_nowait(text)
        self._clients[ws] = queue
        log.info("caption client connected: %s (%d now)", ws.remote_address, len(self._clients))

        async def drain_incoming() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass

        reader = asyncio.ensure_future(drain_incoming())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    break  # the client went away
                text = getter.result()
                if text is None:
                    await ws.close(1001, "session ended")
                    break
                await ws.send(text)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            self._clients.pop(ws, None)
            log.info("caption client left: %s (%d now)", ws.remote_address, len(self._clients))

    async def close(self, grace: float = 2.0) -> None:
        """Send what is queued, say goodbye (1001), and stop listening."""
        for queue in list(self._clients.values()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        if self._clients:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + grace
            while self._clients and loop.time() < deadline:
                await asyncio.sleep(0.05)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), grace + 3)
            self._server = None
