"""Rate limits per client (draft-ietf-httpapi-ratelimit-headers), as pure ASGI middleware.

Fixed windows of 60 s from a key's first request (the `limits` library's fixed-window strategy):
one counter per key, so with Redis a request costs one atomic INCR (and a TTL read for the
headers) and every API process shares the budget, and `t` in the `RateLimit` header is exactly
when the budget refills.

Keys: the client of a valid bearer token; on the token endpoint the client id it is given (HTTP
Basic or form) from the caller's address, with its own smaller budget (so that a stranger naming
another's client id spends a budget of its own, not that client's); anything else by client
address. Probes, metrics and the docs are never refused: their answers tell the caller's budget
without spending it."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from urllib.parse import parse_qs

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.errors import StorageError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from src.api.middleware import send_problem
from src.api.oauth import _basic_credentials
from src.api.problems import DATABASE_UNAVAILABLE_ERRORS
from src.config import Settings
from src.services.errors import DomainError
from src.services.tokens import TokenVerifier

logger = logging.getLogger("weft.http")

TOKEN_PATH = "/oauth/token"
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
EXEMPT_PREFIXES = ("/docs", "/redoc")
# The token form is a few hundred bytes; a body this long is not read for its client id.
TOKEN_FORM_PEEK_BYTES = 16 * 1024
REDIS_TIMEOUT_SECONDS = 1.0


def is_rate_limited(path: str) -> bool:
    return path not in EXEMPT_PATHS and not path.startswith(EXEMPT_PREFIXES)


def bearer_client_id(scope: Scope) -> str | None:
    """The client of the request's bearer token if its signature and claims verify (the verifier
    caches them, so this is cheap); revocation is left to the route. When the signing keys cannot
    be read, the request goes on as anonymous and the route answers the outage."""
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    verifier: TokenVerifier = scope["app"].state.token_verifier
    try:
        return verifier.verify(token.strip()).client_id
    except (DomainError, *DATABASE_UNAVAILABLE_ERRORS):
        return None


@dataclass(frozen=True)
class Policy:
    name: str
    item: RateLimitItem

    @property
    def header(self) -> bytes:
        return f'"{self.name}";q={self.item.amount};w={self.item.get_expiry()}'.encode()


def rate_limit_storage(settings: Settings) -> Storage:
    if settings.redis_url is None:
        return MemoryStorage()
    return RedisStorage(
        "async+" + settings.redis_url,
        implementation="redispy",
        key_prefix=settings.rate_limit_key_prefix,
        wrap_exceptions=True,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
    )


async def _peek_form_client_id(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The `client_id` of a form body, and a `receive` that hands the app the same body again."""
    messages: list[Message] = []
    size = 0
    more = True
    while more and size <= TOKEN_FORM_PEEK_BYTES:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        more = message.get("more_body", False)

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    content_type = Headers(scope=scope).get("content-type", "")
    if more or not content_type.startswith("application/x-www-form-urlencoded"):
        return None, replay
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    values = parse_qs(body.decode("latin-1")).get("client_id", [])
    return (values[0] if values and values[0] else None), replay


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.storage = rate_limit_storage(settings)
        self.default = Policy("default", RateLimitItemPerMinute(settings.rate_limit_per_minute))
        self.token = Policy("token", RateLimitItemPerMinute(settings.token_rate_limit_per_minute))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Probes, metrics and the docs are never refused, but their answers tell the budget too.
        limited = is_rate_limited(scope["path"])
        policy, key, receive = await self._classify(scope, receive)
        try:
            used, reset_at = await (self._hit if limited else self._peek)(policy, key)
        except StorageError:
            # The budget store being down must not take the API down with it.
            logger.warning("rate limit storage unavailable", exc_info=True)
            await self.app(scope, receive, send)
            return
        reset = max(0, math.ceil(reset_at - time.time()))
        remaining = max(0, policy.item.amount - used)
        headers = [
            (b"ratelimit-policy", policy.header),
            (b"ratelimit", f'"{policy.name}";r={remaining};t={reset}'.encode()),
        ]
        if limited and used > policy.item.amount:
            await send_problem(
                send,
                429,
                "rate-limited",
                "Too Many Requests",
                f"The {policy.name} budget of {policy.item.amount} requests per "
                f"{policy.item.get_expiry()} s is spent; retry after {max(reset, 1)} s.",
                scope["path"],
                headers=[(b"retry-after", str(max(reset, 1)).encode()), *headers],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _hit(self, policy: Policy, key: str) -> tuple[int, float]:
        """Spends one request of the key's budget: what `limits`' `FixedWindowRateLimiter.hit`
        and `get_window_stats` answer, in two storage calls instead of their three (with Redis,
        round trips on every request). Answers the requests used and when the window ends."""
        storage_key = policy.item.key_for(policy.name, key)
        used = await self.storage.incr(storage_key, policy.item.get_expiry())
        return used, await self.storage.get_expiry(storage_key)

    async def _peek(self, policy: Policy, key: str) -> tuple[int, float]:
        """What `_hit` answers, without spending a request: a window not yet started is a whole
        window away from its end."""
        storage_key = policy.item.key_for(policy.name, key)
        used = await self.storage.get(storage_key)
        if not used:
            return 0, time.time() + policy.item.get_expiry()
        return used, await self.storage.get_expiry(storage_key)

    async def _classify(self, scope: Scope, receive: Receive) -> tuple[Policy, str, Receive]:
        if scope["path"] == TOKEN_PATH:
            basic = _basic_credentials(Headers(scope=scope).get("authorization"))
            client_id = basic[0] if basic else None
            if client_id is None and scope["method"] == "POST":
                client_id, receive = await _peek_form_client_id(scope, receive)
            address = _client_address(scope)
            if client_id is not None:
                return self.token, f"client:{client_id}@{address}", receive
            return self.token, f"ip:{address}", receive
        client_id = bearer_client_id(scope)
        if client_id is not None:
            return self.default, f"client:{client_id}", receive
        return self.default, f"ip:{_client_address(scope)}", receive


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
