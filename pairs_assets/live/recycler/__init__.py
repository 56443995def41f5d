"""The data recycler: replays stored bars as Alpaca's market-data stream and historical bars endpoint.

One ``websockets`` server on one port (``127.0.0.1`` by default) serves both:

* ``ws://<host>:<port>/v2/<feed>`` — Alpaca's stock stream protocol (see :mod:`pairs_assets.market.wire`),
  so the unmodified ``alpaca.data.live.StockDataStream(key, secret, url_override=…)`` connects,
  authenticates, subscribes and receives ``alpaca.data.models.Bar`` objects;
* ``http://<host>:<port>/v2/stocks/bars`` — Alpaca's historical bars endpoint with paging, so
  ``StockHistoricalDataClient(url_override="http://<host>:<port>")`` reads from it;
* ``http://<host>:<port>/healthz`` — ``ok`` and the replay counters as JSON.

The replay is a broadcast clock, like a market: every ``bar_interval_s / speed`` seconds it emits
the next *step* (all bars sharing the next stored timestamp) to every client subscribed to those
symbols. A client that is disconnected misses the steps emitted meanwhile — as with Alpaca — and
recovers them from the historical endpoint, which also serves the bars already emitted (under
their re-stamped times when re-stamping). Modes: ``loop`` (``loops`` passes, -1 = forever),
``date_range`` (one pass over ``start``..``end``), ``single_pass`` (one pass over everything).

At ``speed=inf`` the clock has no period: it emits the next step as soon as the *fastest* subscribed
client has drained its queue, and idles while no client is subscribed (nobody would read the steps,
and the emitted-bar log would fill for nothing). Each client's queue is bounded
(``max_pending_frames`` bar frames): a client that falls that far behind — it stopped reading, or
reads slower than the replay — gets Alpaca's ``[{"T": "error", "code": 407, "msg": "slow client"}]``
(its queued bars are dropped so the error is next on the wire) and is disconnected; other clients
keep their pace. It recovers the gap from the historical endpoint, as from Alpaca.

Abuse is answered, never echoed in bulk or dropped silently: a subscribe naming thousands of
unknown symbols gets one error listing the first few and the count; an HTTP request other than
``GET`` gets ``405`` and a request with a body (any ``Content-Length`` but 0, or chunked) ``413``,
without reading the body.

Bars are re-stamped with the wall-clock time of their emission (UTC, microseconds, strictly
increasing) unless ``restamp=False``, which keeps the stored timestamps. A symbol without stored
bars can be served by a *proxy* symbol's bars (``proxies={"XYZ": "AAPL"}`` or ``default_proxy``);
every such bar is labelled with ``"proxy": "AAPL"`` so it never passes for the real thing.

The package, one module per job:

* :mod:`~pairs_assets.live.recycler.data` — the settings and the stored bars grouped into steps;
* :mod:`~pairs_assets.live.recycler.protocol` — the stream protocol, the HTTP routing and the clock;
* :mod:`~pairs_assets.live.recycler.history` — the historical bars endpoint with paging;
* :mod:`~pairs_assets.live.recycler.runner` — a recycler in a thread, or until a signal.

Symbols and timeframes are checked by :mod:`pairs_assets.market.symbology`, as everywhere else.
"""

from pairs_assets.live.recycler.data import (
    MAX_PAGE,
    MODES,
    RECYCLED_SOURCE_PREFIX,
    RecyclerError,
    RecyclerSettings,
    ReplayData,
    choose_sources,
    load_replay_data,
)
from pairs_assets.live.recycler.history import DEFAULT_PAGE, HistoryEndpoint
from pairs_assets.live.recycler.protocol import STREAM_FEEDS, Recycler, RecyclerStats
from pairs_assets.live.recycler.runner import (
    RecyclerHandle,
    recycler_in_thread,
    serve_until_signalled,
    start_recycler_thread,
)

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "MODES",
    "RECYCLED_SOURCE_PREFIX",
    "STREAM_FEEDS",
    "HistoryEndpoint",
    "Recycler",
    "RecyclerError",
    "RecyclerHandle",
    "RecyclerSettings",
    "RecyclerStats",
    "ReplayData",
    "choose_sources",
    "load_replay_data",
    "recycler_in_thread",
    "serve_until_signalled",
    "start_recycler_thread",
]
