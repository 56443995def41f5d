"""Running a recycler: on its own event loop in a background thread (tests, benchmarks), or in the
foreground until a signal (``pairs recycler``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from pairs_assets.live.recycler.data import RecyclerError, RecyclerSettings
from pairs_assets.live.recycler.protocol import Recycler, RecyclerStats
from resources.market_data import MarketDataStore


class RecyclerHandle:
    """A recycler running on its own event loop in a background thread (tests, benchmarks, CLI)."""

    def __init__(self, recycler: Recycler, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.recycler = recycler
        self._loop = loop
        self._thread = thread

    @property
    def ws_url(self) -> str:
        return self.recycler.ws_url

    @property
    def http_url(self) -> str:
        return self.recycler.http_url

    @property
    def stats(self) -> RecyclerStats:
        return self.recycler.stats

    def call(self, coro, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def drop_connections(self) -> int:
        return self.call(self.recycler.drop_connections())

    def wait_finished(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.recycler.stats.finished:
                return True
            time.sleep(0.02)
        return self.recycler.stats.finished

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self.call(self.recycler.stop(), timeout)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)


def start_recycler_thread(store: MarketDataStore, settings: RecyclerSettings, timeout: float = 30.0) -> RecyclerHandle:
    """Start a recycler in a daemon thread; return once it listens (errors re-raised here)."""
    loop = asyncio.new_event_loop()
    recycler = Recycler(store, settings)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                await recycler.start()
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
            finally:
                started.set()

        loop.create_task(boot())
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="recycler", daemon=True)
    thread.start()
    if not started.wait(timeout):
        raise RecyclerError(f"recycler did not start within {timeout:g} s")
    handle = RecyclerHandle(recycler, loop, thread)
    if failure:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        raise failure[0]
    return handle


@contextlib.contextmanager
def recycler_in_thread(
    store: MarketDataStore, settings: RecyclerSettings, timeout: float = 30.0
) -> Iterator[RecyclerHandle]:
    """``with recycler_in_thread(store, settings) as handle:`` — stopped on exit, whatever happens."""
    handle = start_recycler_thread(store, settings, timeout)
    try:
        yield handle
    finally:
        handle.stop()


async def serve_until_signalled(
    store: MarketDataStore,
    settings: RecyclerSettings,
    *,
    report_every_s: float = 30.0,
    exit_when_done: bool = False,
    echo=print,
) -> RecyclerStats:
    """Run a recycler until SIGINT/SIGTERM (or, with ``exit_when_done``, until the replay ends)."""
    import signal

    recycler = Recycler(store, settings)
    await recycler.start()
    echo(f"recycler listening: stream {recycler.ws_url}  historical {recycler.http_url}/v2/stocks/bars")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            waiters = [asyncio.ensure_future(stop.wait())]
            if exit_when_done:
                waiters.append(asyncio.ensure_future(recycler.finished.wait()))
            done, pending = await asyncio.wait(waiters, timeout=report_every_s, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            s = recycler.stats
            echo(
                f"recycler: {s.steps_emitted} steps, {s.bars_emitted} bars emitted, {s.bars_sent} sent, "
                f"{s.clients} client(s), {s.passes_done} pass(es) done"
            )
            if exit_when_done and recycler.finished.is_set():
                break
    finally:
        await recycler.stop()
    return recycler.stats
