"""The recycler under abuse (issue 9, items 12-14): no clients at unlimited speed, a client that stops
reading, a subscribe naming 50,000 unknown symbols, HTTP requests websockets cannot parse.

Clients are plain websockets clients speaking JSON (the wire format as Alpaca documents it) and raw
sockets for HTTP; every wait is on an event or a counter, bounded in time, never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import threading

import pandas as pd
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from pairs_assets.live.recycler import RecyclerSettings, recycler_in_thread
from pairs_assets_tests.live.helpers import WAIT_S, store_with_bars, wait_until

SYMBOLS = [f"S{i:02d}" for i in range(8)]


@pytest.fixture()
def store(sqlite_url):
    return store_with_bars(sqlite_url, SYMBOLS, 200)


def _session(url: str, symbols: list[str]) -> ClientConnection:
    """Connect, authenticate and subscribe to bars; return the open connection."""
    ws = connect(url, open_timeout=WAIT_S)
    assert json.loads(ws.recv(WAIT_S)) == [{"T": "success", "msg": "connected"}]
    ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
    assert json.loads(ws.recv(WAIT_S)) == [{"T": "success", "msg": "authenticated"}]
    ws.send(json.dumps({"action": "subscribe", "bars": symbols}))
    assert json.loads(ws.recv(WAIT_S))[0]["T"] == "subscription"
    return ws


async def _steps_while_yielding(recycler, n: int) -> tuple[int, int]:
    """Steps emitted before and after giving the recycler's event loop ``n`` turns."""
    for _ in range(100):  # let a pending wake-up settle first
        await asyncio.sleep(0)
    before = recycler.stats.steps_emitted
    for _ in range(n):
        await asyncio.sleep(0)
    return before, recycler.stats.steps_emitted


def test_unlimited_speed_idles_until_a_client_subscribes(store):
    settings = RecyclerSettings(port=0, speed=math.inf, mode="loop", loops=-1, restamp=False)
    with recycler_in_thread(store, settings) as handle:
        recycler = handle.recycler
        with _session(handle.ws_url, ["S00"]) as ws:
            first = json.loads(ws.recv(WAIT_S))
            assert first[0]["T"] == "b"
        assert wait_until(lambda: handle.stats.clients == 0, WAIT_S)
        # nobody subscribed: the replay loop must not run (before the fix it emitted a step per turn)
        before, after = handle.call(_steps_while_yielding(recycler, 2000))
        assert after == before, f"{after - before} steps emitted with no client"
        assert handle.stats.idle_waits >= 1
        # the next subscriber gets the very next step: nothing was replayed to nobody meanwhile
        times = recycler.data.step_times
        with _session(handle.ws_url, ["S00"]) as ws:
            bar = json.loads(ws.recv(WAIT_S))[0]
        assert pd.Timestamp(bar["t"]) == times[before % len(times)]


# Paced (one step per 2 ms) the replay does not wait for anyone: a client is slow once it is
# max_pending_frames steps behind, i.e. after a stall of max_pending_frames × 2 ms. 50 frames (0.1 s)
# also dropped the reading client when the loaded machine stalled its thread (issue 21 item 11); 5,000
# frames is a 10 s stall — the reading client keeps up on a busy machine, the one that never reads still
# gets its 407 (it only takes longer). Unlimited, the pace is the fastest reader's: 50 is enough.
@pytest.mark.parametrize(
    ("speed", "max_pending_frames"), [(math.inf, 50), (60.0 / 0.002, 5_000)], ids=["unlimited", "one-step-per-2ms"]
)
def test_slow_client_gets_407_and_is_closed_while_a_fast_client_keeps_its_pace(store, speed, max_pending_frames):
    settings = RecyclerSettings(
        port=0,
        speed=speed,
        mode="loop",
        loops=-1,
        restamp=False,
        max_pending_frames=max_pending_frames,
        slow_client_grace_s=30,
    )
    with recycler_in_thread(store, settings) as handle:
        times = list(handle.recycler.data.step_times)
        slow = _session(handle.ws_url, SYMBOLS)  # subscribes, then reads nothing
        fast_stamps: list[pd.Timestamp] = []
        fast_errors: list[dict] = []
        stop = threading.Event()

        def read_fast() -> None:
            with _session(handle.ws_url, SYMBOLS) as ws:
                while not stop.is_set():
                    for message in json.loads(ws.recv(WAIT_S)):
                        if message["T"] == "b" and message["S"] == "S00":
                            fast_stamps.append(pd.Timestamp(message["t"]))
                        elif message["T"] == "error":
                            fast_errors.append(message)

        reader = threading.Thread(target=read_fast, name="fast-client", daemon=True)
        reader.start()
        try:
            assert wait_until(lambda: handle.stats.slow_clients == 1, 4 * WAIT_S), handle.stats
            at_407 = len(fast_stamps)
            # the fast client kept receiving while the slow one was stalled, and keeps receiving after
            assert at_407 >= 45, at_407  # at least the steps that filled the slow client's queue
            assert wait_until(lambda: len(fast_stamps) >= at_407 + 500, WAIT_S), len(fast_stamps)
        finally:
            stop.set()
            reader.join(10)
        assert not fast_errors and handle.stats.slow_clients == 1 and handle.stats.connections == 2
        # every step, in order, no gap (stored timestamps cycle through the replay's steps)
        positions = [times.index(t) for t in fast_stamps]
        assert all((b - a) % len(times) == 1 for a, b in zip(positions, positions[1:]))

        # the slow client, reading again, finds Alpaca's 407 after the bars already on the wire
        received: list[dict] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                received.extend(json.loads(slow.recv(WAIT_S)))
        assert received[-1] == {"T": "error", "code": 407, "msg": "slow client"}
        assert all(m["T"] == "b" for m in received[:-1])
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason == "slow client"
        assert wait_until(lambda: handle.stats.clients == 0, WAIT_S)


def test_a_client_that_floods_bad_frames_without_reading_the_answers_gets_407(store):
    settings = RecyclerSettings(port=0, speed=60.0, max_pending_frames=50, slow_client_grace_s=30)
    with recycler_in_thread(store, settings) as handle:
        sock = socket.create_connection(("127.0.0.1", handle.recycler.port), timeout=WAIT_S)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # fill the server's buffers sooner
        sock.settimeout(None)
        with connect(handle.ws_url, sock=sock, open_timeout=WAIT_S) as ws:
            ws.recv(WAIT_S)
            ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
            ws.recv(WAIT_S)
            stop = threading.Event()
            sent = [0]

            def flood() -> None:  # sends only; nobody reads the answers until the server gives up
                with contextlib.suppress(ConnectionClosed):
                    while not stop.is_set() and sent[0] < 1_000_000:
                        ws.send("{not json")
                        sent[0] += 1

            flooder = threading.Thread(target=flood, name="flooder", daemon=True)
            flooder.start()
            try:
                assert wait_until(lambda: handle.stats.slow_clients == 1, WAIT_S), (sent, handle.stats)
                received: list[dict] = []
                with pytest.raises(ConnectionClosed):
                    while True:
                        received.extend(json.loads(ws.recv(WAIT_S)))
            finally:
                stop.set()
                flooder.join(10)
        assert received[-1] == {"T": "error", "code": 407, "msg": "slow client"}
        assert all(m.get("code") == 400 for m in received[:-1]) and len(received) < sent[0] + 1


def test_subscribe_with_50000_unknown_symbols_is_answered_in_one_truncated_error(store):
    unknown = [f"Z{i:05d}" for i in range(50_000)]
    with recycler_in_thread(store, RecyclerSettings(port=0, speed=60.0, restamp=False)) as handle:
        with connect(handle.ws_url, open_timeout=WAIT_S) as ws:
            ws.recv(WAIT_S)
            ws.send(json.dumps({"action": "auth", "key": "k", "secret": "s"}))
            ws.recv(WAIT_S)
            ws.send(json.dumps({"action": "subscribe", "bars": ["S01", *unknown], "trades": unknown}))
            frames = []
            while len(frames) < 3:  # two errors and the acknowledgement (bars of S01 may come between)
                frame = ws.recv(WAIT_S)
                if json.loads(frame)[0]["T"] != "b":
                    frames.append(frame)
            replies = [json.loads(frame)[0] for frame in frames]
            assert max(len(frame) for frame in frames) < 2_000, [len(f) for f in frames]
            errors = [r["msg"] for r in replies if r["T"] == "error"]
            unknown_error = next(m for m in errors if "unknown symbol(s)" in m)
            assert "Z00000, Z00001" in unknown_error and "(+49980 more, 50000 in all; list truncated)" in unknown_error
            unserved_error = next(m for m in errors if "bars only" in m)
            assert "(+49980 more, 50000 in all; list truncated)" in unserved_error
            ack = next(r for r in replies if r["T"] == "subscription")
            assert ack["bars"] == ["S01"] and ack["trades"] == []
            ws.send(json.dumps({"action": "subscribe", "bars": [f"bad symbol {i}" for i in range(50_000)]}))
            invalid = next(m for m in iter(lambda: json.loads(ws.recv(WAIT_S))[0], None) if m["T"] == "error")
            assert invalid["code"] == 400 and "(+49995 more; 50000 invalid in all)" in invalid["msg"]
            assert len(invalid["msg"]) < 500


def _http(port: int, head: str, body: bytes = b"") -> tuple[int, dict, dict]:
    """Send a raw HTTP request; return (status, headers, JSON body) and check the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after answering (Connection: close)
            data += chunk
    raw_head, _, raw_body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, json.loads(raw_body)


def test_http_post_gets_405_and_a_request_body_gets_413(store):
    with recycler_in_thread(store, RecyclerSettings(port=0, speed=60.0)) as handle:
        port = handle.recycler.port
        host = f"Host: 127.0.0.1:{port}"
        status, headers, body = _http(
            port,
            f"POST /v2/stocks/bars HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nContent-Length: 17",
            b'{"symbols":"S00"}',
        )
        assert status == 405 and headers["Allow"] == "GET" and "POST" in body["message"]
        status, headers, _ = _http(port, f"POST /v2/stocks/bars HTTP/1.1\r\n{host}\r\nContent-Length: 0")
        assert status == 405 and headers["Allow"] == "GET"
        status, _, _ = _http(port, f"DELETE /healthz HTTP/1.1\r\n{host}")
        assert status == 405
        # a body announced as a terabyte is refused at once, without reading it
        status, _, body = _http(
            port, f"GET /v2/stocks/bars?symbols=S00&timeframe=1Min HTTP/1.1\r\n{host}\r\nContent-Length: 1000000000000"
        )
        assert status == 413 and "Content-Length: 1000000000000" in body["message"]
        status, _, body = _http(
            port, f"GET /healthz HTTP/1.1\r\n{host}\r\nTransfer-Encoding: chunked", b"5\r\nhello\r\n0\r\n\r\n"
        )
        assert status == 413 and "chunked" in body["message"]
        # and the server still answers ordinary requests
        status, _, body = _http(port, f"GET /healthz HTTP/1.1\r\n{host}")
        assert status == 200 and body["status"] == "ok"
        status, _, body = _http(port, f"GET /healthz HTTP/1.1\r\n{host}\r\nContent-Length: 0")
        assert status == 200
