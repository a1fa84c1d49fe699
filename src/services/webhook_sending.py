"""Sending one webhook message: signed per the Standard Webhooks spec, over a connection to the
address its URL resolves to now (checked against the SSRF rules), reading at most
`RESPONSE_BODY_LIMIT` bytes of the answer. Recording what happened is `src.services.delivery`'s."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import itertools
import math
import time
from dataclasses import dataclass, field

import httpx
from standardwebhooks import Webhook

from src.config import Settings
from src.db import utcnow
from src.services.ssrf import UnsafeDestination, resolve_destination_async
from src.services.webhooks import RESPONSE_BODY_LIMIT

CONNECTIONS_PER_CLIENT = 2
MAX_RETRY_AFTER = dt.timedelta(hours=24)
USER_AGENT = "Weft-Webhooks/1.0"


@dataclass(frozen=True)
class Outgoing:
    """A message ready to send: the exact body and the secrets that sign it."""

    delivery_id: str
    lease: dt.datetime | None
    attempt: int
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    body: bytes


@dataclass
class Outcome:
    delivery_id: str
    lease: dt.datetime | None
    attempt: int
    endpoint_id: str
    duration_ms: int = 0
    response_code: int | None = None
    response_body: str = ""
    error: str | None = None
    retry_after: dt.timedelta | None = None
    sent: bool = True
    started_at: dt.datetime = field(default_factory=utcnow)

    @property
    def succeeded(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300


def make_http_client(settings: Settings, connections: int) -> httpx.AsyncClient:
    """A pooled client: no redirects, no proxies from the environment (a proxy would connect to
    the name, not to the address that was checked)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


class HttpClients:
    """The worker's senders: `webhook_concurrency` connections spread over small clients.

    Before each request httpcore checks every connection of its pool (a readability syscall
    each), so one large pool costs more per request the larger it is: measured against a local
    receiver, one client of 64 connections sent 365 requests/s, eight clients of eight 1,030/s,
    32 clients of two 1,560/s."""

    def __init__(self, settings: Settings) -> None:
        count = math.ceil(settings.webhook_concurrency / CONNECTIONS_PER_CLIENT)
        connections = math.ceil(settings.webhook_concurrency / count)
        self._clients = [make_http_client(settings, connections) for _ in range(count)]
        self._turn = itertools.cycle(self._clients)

    def next(self) -> httpx.AsyncClient:
        return next(self._turn)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def _retry_after(value: str | None) -> dt.timedelta | None:
    if not value:
        return None
    if value.strip().isdigit():
        # Capped before the timedelta is made: a receiver's 10**20 would overflow it.
        return dt.timedelta(seconds=min(int(value.strip()), MAX_RETRY_AFTER.total_seconds()))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return max(moment - utcnow(), dt.timedelta(0))


def signed_headers(message: Outgoing, moment: dt.datetime) -> dict[str, str]:
    content = message.body.decode()
    signatures = [
        Webhook(secret).sign(message.delivery_id, moment, content) for secret in message.secrets
    ]
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message.delivery_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


async def send(client: httpx.AsyncClient, message: Outgoing, settings: Settings) -> Outcome:
    """One attempt: check where the URL points now, connect to that address, and wait at most
    `webhook_timeout_seconds` for the answer. Never raises."""
    outcome = Outcome(
        delivery_id=message.delivery_id,
        lease=message.lease,
        attempt=message.attempt,
        endpoint_id=message.endpoint_id,
    )
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.webhook_timeout_seconds):
            destination = await resolve_destination_async(message.url, settings)
            headers = signed_headers(message, utcnow()) | {"host": destination.host_header}
            extensions = (
                {"sni_hostname": destination.host} if message.url.startswith("https") else {}
            )
            request = client.build_request(
                "POST", destination.connect_url, content=message.body, headers=headers,
                extensions=extensions,
            )  # fmt: skip
            response = await client.send(request, stream=True)
            try:
                head = b""
                async for chunk in response.aiter_raw():
                    head += chunk
                    if len(head) >= RESPONSE_BODY_LIMIT:
                        break
            finally:
                await response.aclose()
        outcome.response_code = response.status_code
        outcome.response_body = head[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="replace")
        if response.status_code in (429, 503):
            outcome.retry_after = _retry_after(response.headers.get("retry-after"))
    except UnsafeDestination as exc:
        outcome.error = f"refused: the URL {exc}"
    except TimeoutError:
        outcome.error = f"no answer within {settings.webhook_timeout_seconds:g} s"
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"[:500]
    outcome.duration_ms = round((time.perf_counter() - started) * 1000)
    return outcome


async def deliver_alone(message: Outgoing, settings: Settings) -> Outcome:
    async with make_http_client(settings, connections=1) as client:
        return await send(client, message, settings)
