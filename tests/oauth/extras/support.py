"""Test peers for the registration and logout tests: a tiny HTTP(S) server on loopback that serves client
metadata documents (and records what it is sent), and the test-only fetcher that lets the authorization server
reach it (the production fetcher refuses loopback and plain http, so tests swap this in through the resolver
hook: ``services.oauth.metadata_documents.fetcher = LoopbackFetcher(...)``)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit, urlunsplit

from tessera.oauth.metadata_documents import Fetched, SafeHttp


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    delay: float = 0.0  # seconds before the body is sent (a slow server)
    drip: bool = False  # send the body a byte at a time, slowly


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class DocumentServer:
    """HTTP/1.1 on 127.0.0.1: GETs answered from ``routes``, every request recorded in ``received``."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.routes: dict[str, Route] = {}
        self.received: list[Received] = []
        self.arrived = asyncio.Event()
        self._tls = tls
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
            self.received.append(Received(method, target, headers, body))
            self.arrived.set()
            route = self.routes.get(urlsplit(target).path, Route(status=404, body=b"{}"))
            if route.delay:
                await asyncio.sleep(route.delay)
            header_lines = [
                f"HTTP/1.1 {route.status} X",
                f"content-length: {len(route.body)}",
                "connection: close",
            ]
            header_lines += [f"{k}: {v}" for k, v in route.headers.items()]
            writer.write(("\r\n".join(header_lines) + "\r\n\r\n").encode())
            if route.drip:
                for i in range(len(route.body)):
                    writer.write(route.body[i : i + 1])
                    await writer.drain()
                    await asyncio.sleep(0.05)
            else:
                writer.write(route.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(self) -> DocumentServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received


@asynccontextmanager
async def document_server(tls: ssl.SSLContext | None = None) -> AsyncIterator[DocumentServer]:
    server = await DocumentServer(tls).start()
    try:
        yield server
    finally:
        await server.stop()


async def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


class LoopbackFetcher:
    """The resolver hook for tests: ``https://<host>/...`` is fetched as ``http://<host>:<port>/...`` with the
    host resolved to 127.0.0.1. Everything else (size and time limits, no redirects, the Host header) is
    the production ``SafeHttp``."""

    def __init__(self, port: int, *, timeout: float = 5.0, max_bytes: int = 5 * 1024):
        self.port = port
        self.http = SafeHttp(
            timeout=timeout, max_bytes=max_bytes, resolve=to_loopback, allow_private=True, allow_http=True
        )
        self.fetched: list[str] = []

    async def get(self, url: str) -> Fetched:
        self.fetched.append(url)
        parts = urlsplit(url)
        rewritten = urlunsplit(("http", f"{parts.hostname}:{self.port}", parts.path, parts.query, ""))
        return await self.http.get(rewritten)

    async def aclose(self) -> None:
        await self.http.aclose()
