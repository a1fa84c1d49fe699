"""The webhook worker: fans new events out, sends due deliveries concurrently over pooled HTTP
clients, records each attempt, and hourly prunes events older than the retention period and
moves the factories whose supply chain links came into or out of force.

`weft worker` runs `Worker.run` until SIGTERM or SIGINT, then finishes the sends in flight.
`weft serve` runs the same loop in a thread (`start_in_thread`) unless `--no-worker`. Tests and
benchmarks call `run_once`, which does everything due now and returns. Run as many workers as
needed on PostgreSQL; on SQLite run one (it has a single writer)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import uvloop
from sqlalchemy import Engine

from src.config import Settings
from src.db import transaction, utcnow
from src.services.delivery import RetryPolicy, claim, fan_out, prepare, record
from src.services.event_feed import prune_events
from src.services.supply_chains import touch_factories_of_links_turning
from src.services.webhook_sending import HttpClients, Outcome, Outgoing, send

logger = logging.getLogger("weft.worker")

Clock = Callable[[], dt.datetime]
IDLE_POLL_SECONDS = 0.25
RECORD_EVERY_SECONDS = 0.05
HOUSEKEEPING_EVERY = dt.timedelta(hours=1)
ERROR_PAUSE_SECONDS = 2.0


class _Slots:
    """How many more sends may start; `freed` wakes the loop when one ends."""

    def __init__(self, free: int) -> None:
        self.free = free
        self.freed = asyncio.Event()

    def release(self, count: int) -> None:
        self.free += count
        self.freed.set()


@dataclass
class Worker:
    """One worker process's loop. Database work runs in threads, so sends never wait on it."""

    engine: Engine
    settings: Settings
    clock: Clock = utcnow
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    _clients: HttpClients | None = None
    _finished: list[Outcome] = field(default_factory=list)
    _housekept_at: dt.datetime | None = None

    async def __aenter__(self) -> Worker:
        self._clients = HttpClients(self.settings)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._clients is not None:
            await self._clients.aclose()

    # Database steps, each one short transaction (run in a thread).

    def _fan_out(self) -> int:
        with transaction(self.engine) as session:
            return fan_out(session, now=self.clock())

    def _claim(self, limit: int) -> list[str]:
        with transaction(self.engine) as session:
            return claim(
                session,
                now=self.clock(),
                lease_seconds=self.settings.webhook_lease_seconds,
                limit=limit,
            )

    def _record(self, outcomes: Sequence[Outcome]) -> None:
        with transaction(self.engine) as session:
            record(session, outcomes, now=self.clock(), policy=self.policy)

    def _housekeeping(self) -> None:
        now = self.clock()
        if self._housekept_at is not None and now - self._housekept_at < HOUSEKEEPING_EVERY:
            return
        with transaction(self.engine) as session:
            pruned = prune_events(session, now=now)
        with transaction(self.engine) as session:
            touched = touch_factories_of_links_turning(session, now=now)
        self._housekept_at = now
        if pruned:
            logger.info("pruned old events", extra={"events": pruned})
        if touched:
            logger.info("factories whose links turned", extra={"factories": touched})

    async def _dispatch(self, ids: Sequence[str], done: Callable[[Outcome], None]) -> None:
        """Sends the claimed deliveries concurrently, handing each outcome to `done`."""
        assert self._clients is not None, "use the worker as `async with Worker(...)`"
        clients = self._clients

        def _build() -> tuple[list[Outgoing], list[Outcome]]:
            with transaction(self.engine) as session:
                return prepare(session, ids, now=self.clock())

        messages, dropped = await asyncio.to_thread(_build)
        for outcome in dropped:
            done(outcome)

        async def _one(message: Outgoing) -> None:
            done(await send(clients.next(), message, self.settings))

        await asyncio.gather(*(_one(message) for message in messages))

    async def _dispatch_guarded(
        self, ids: Sequence[str], done: Callable[[Outcome], None], slots: _Slots
    ) -> None:
        """As `_dispatch`; if preparing fails, frees the slots of what was never sent (the leases
        expire and a later pass takes those deliveries again)."""
        handed: list[Outcome] = []

        def _hand(outcome: Outcome) -> None:
            handed.append(outcome)
            done(outcome)

        try:
            await self._dispatch(ids, _hand)
        except Exception:
            logger.exception("could not send %d deliveries", len(ids))
            slots.release(len(ids) - len(handed))

    async def run_once(self) -> int:
        """Fans out every new event and sends every delivery due now, retries that fall due
        meanwhile included; answers how many attempts it made (or skipped)."""
        attempts = 0
        while await asyncio.to_thread(self._fan_out):
            pass
        while True:
            ids = await asyncio.to_thread(self._claim, self.settings.webhook_concurrency)
            if not ids:
                return attempts
            outcomes: list[Outcome] = []
            await self._dispatch(ids, outcomes.append)
            await asyncio.to_thread(self._record, outcomes)
            attempts += len(outcomes)
            while await asyncio.to_thread(self._fan_out):
                pass

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: keeps up to `webhook_concurrency` sends in flight, records
        outcomes in small batches, fans out new events. Then lets the sends in flight finish."""
        in_flight: set[asyncio.Task[None]] = set()
        slots = _Slots(self.settings.webhook_concurrency)
        drained = asyncio.Event()
        recorder = asyncio.create_task(self._record_until(drained))

        def _done(outcome: Outcome) -> None:
            self._finished.append(outcome)
            slots.release(1)

        # Claiming in batches keeps transactions few while the sends stream.
        batch = max(1, self.settings.webhook_concurrency // 4)
        while not stop.is_set():
            if slots.free < batch and in_flight:
                slots.freed.clear()
                await _sleep_unless(slots.freed, IDLE_POLL_SECONDS)
                continue
            try:
                await asyncio.to_thread(self._fan_out)
                await asyncio.to_thread(self._housekeeping)
                ids = await asyncio.to_thread(self._claim, slots.free)
            except Exception:
                logger.exception("worker step failed; pausing")
                await _sleep_unless(stop, ERROR_PAUSE_SECONDS)
                continue
            if ids:
                slots.free -= len(ids)
                task = asyncio.create_task(self._dispatch_guarded(ids, _done, slots))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            else:
                await _sleep_unless(stop, IDLE_POLL_SECONDS)
        if in_flight:
            await asyncio.gather(*in_flight, return_exceptions=True)
        drained.set()
        await recorder
        await self._flush()

    async def _flush(self) -> None:
        if not self._finished:
            return
        batch, self._finished = self._finished, []
        try:
            await asyncio.to_thread(self._record, batch)
        except Exception:
            # Their leases expire and another pass sends them again (at least once).
            logger.exception("could not record %d attempts", len(batch))

    async def _record_until(self, drained: asyncio.Event) -> None:
        while not drained.is_set():
            await self._flush()
            await _sleep_unless(drained, RECORD_EVERY_SECONDS)


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def run_once(
    engine: Engine,
    settings: Settings,
    *,
    clock: Clock = utcnow,
    policy: RetryPolicy | None = None,
) -> int:
    """Fans out and delivers everything due now, then returns (for tests and benchmarks)."""
    async with Worker(engine, settings, clock=clock, policy=policy or RetryPolicy()) as worker:
        return await worker.run_once()


async def serve_forever(engine: Engine, settings: Settings, stop: asyncio.Event) -> None:
    async with Worker(engine, settings) as worker:
        logger.info("webhook worker started")
        await worker.run(stop)
        logger.info("webhook worker stopped")


def run_until_signalled(engine: Engine, settings: Settings) -> None:
    """`weft worker`: runs until SIGTERM or SIGINT, then finishes the sends in flight."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_forever(engine, settings, stop)

    uvloop.run(main())


@dataclass
class BackgroundWorker:
    """A worker running in a thread of the API process (`weft serve` without `--no-worker`)."""

    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    stop_event: asyncio.Event

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join()


def start_in_thread(engine: Engine, settings: Settings) -> BackgroundWorker:
    loop = uvloop.new_event_loop()
    stop = asyncio.Event()

    def _run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve_forever(engine, settings, stop))
        loop.close()

    thread = threading.Thread(target=_run, name="weft-worker", daemon=True)
    thread.start()
    return BackgroundWorker(thread=thread, loop=loop, stop_event=stop)
