"""Benchmark of the live path: signal computation, recycler throughput, replay-to-store lag.

Run: ``.venv/bin/python pairs_assets_tests/benchmarks/bench_live.py [--pairs 100] [--bars 40000] [--lag-seconds 6]``

* signals — 100 pairs (synthetic cointegrated closes, 120 sessions each): the pure math
  (``compute_pair_signal``), the math plus GRU features and one batched GRU forward (CPU, default
  hidden size), and the whole sector computation the asset runs (store reads on SQLite included).
* recycler throughput — bars per second delivered by the recycler at unlimited speed to the real
  alpaca-py ``StockDataStream`` (parsed ``Bar`` objects, and raw dicts), over 127.0.0.1.
* lag — replayed (re-stamped at emission) bars ingested by ``StreamIngestor`` into SQLite:
  time from a bar's emission to the commit of its row (flush interval 0.1 s and 1 s).

Prints a table; no assertions (timings are machine-dependent).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the test helpers, when run as a script

import numpy as np
import pandas as pd
import torch

from pairs_assets.assets.trading_signals import gru_probabilities
from pairs_assets.live.recycler import RecyclerSettings, recycler_in_thread
from pairs_assets.live.stream import StreamIngestor, StreamSettings
from pairs_assets.quant import signals as sig
from pairs_assets.quant.config_model import TradingConfig
from pairs_assets.quant.features import FEATURE_NAMES
from pairs_assets.quant.gru import GRUClassifier
from pairs_assets_tests import trading_configs as configs
from pairs_assets_tests.live.helpers import StreamClient, synthetic_bars, wait_until
from resources.market_data import MarketDataStore

ROWS: list[tuple[str, str, str]] = []


def row(measure: str, value: str, note: str = "") -> None:
    ROWS.append((measure, value, note))
    print(f"  {measure}: {value} {note}", flush=True)


def synthetic_pairs(n_pairs: int, sessions: int = 120, seed: int = 0) -> tuple[list[sig.PairInput], TradingConfig]:
    """Cointegrated synthetic pairs: their signal inputs and the trading config (typed model) holding them."""
    rng = np.random.default_rng(seed)
    inputs, entries = [], []
    for k in range(n_pairs):
        x = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, sessions + 1)))
        beta = 0.5 + rng.random()
        s = np.zeros(sessions + 1)
        for t in range(1, sessions + 1):
            s[t] = 0.9 * s[t - 1] + rng.normal(0, 0.01)
        y = np.exp(beta * np.log(x) + 0.1 + s)
        garch = configs.garch_block(
            omega=1e-5 * 0.05, alpha=0.05, beta=0.9, sigma_forecast=0.01, unconditional_sigma=0.01
        )
        entry = configs.pair_config(
            f"Y{k:03d}",
            f"X{k:03d}",
            hedge_ratio=beta,
            intercept=0.1,
            spread_mean=0.0,
            spread_std=float(np.std(s)),
            garch=garch,
            model=configs.model_block("bench", f"v{k}", garch=garch),
            n_pairs=n_pairs,
            rank=k + 1,
        )
        entries.append(entry)
        params = sig.PairParams.from_pair_config(entry)
        history = pd.DataFrame({"y": y[:-1], "x": x[:-1]}, index=pd.bdate_range("2022-06-01", periods=sessions))
        inputs.append(sig.PairInput(params, history, float(y[-1]), float(x[-1]), pd.Timestamp("2022-12-29T15:00Z")))
    config = configs.trading_config(entries, as_of="2022-12-28", effective="2022-12-29", sector="bench")
    return inputs, config


def timed(fn, repeats: int) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` runs (after one warm-up)."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def bench_signals(n_pairs: int) -> None:
    print(f"signals for {n_pairs} pairs")
    inputs, config = synthetic_pairs(n_pairs)
    limits = sig.RiskLimits()
    torch.manual_seed(0)
    # one model per pair, as the registry holds them (each pair's own registered version)
    models = {f"v{k}": GRUClassifier(n_features=len(FEATURE_NAMES)).eval() for k in range(n_pairs)}

    class Models:
        def load_model(self, name, version):
            return models[version]

    def math_only():
        for pair in inputs:
            sig.compute_pair_signal(pair, 0.6, limits, n_pairs)

    def with_gru_pair_by_pair():  # before: each pair's features in pandas, each model's own forward
        for k, pair in enumerate(inputs):
            with torch.no_grad():
                p = float(models[f"v{k}"](torch.as_tensor(sig.gru_sequence(pair, 10)[None]))[0])
            sig.compute_pair_signal(pair, p, limits, n_pairs)

    def with_gru_batched():  # after: the asset's gru_probabilities — one vectorised pass, one stacked forward
        probabilities, _, _ = gru_probabilities(inputs, Models(), 10)
        for pair in inputs:
            sig.compute_pair_signal(pair, probabilities[pair.params.pair_id], limits, n_pairs)

    row(f"signals, {n_pairs} pairs, math only", f"{timed(math_only, 5):.1f} ms", "(spread, z, decision, size, drift)")
    row(
        f"signals, {n_pairs} pairs, + GRU pair by pair",
        f"{timed(with_gru_pair_by_pair, 5):.1f} ms",
        f"(before: gru_sequence + each of {n_pairs} models' forward; CPU, hidden 64, seq 10)",
    )
    row(
        f"signals, {n_pairs} pairs, + GRU one batched pass",
        f"{timed(with_gru_batched, 11):.1f} ms",
        f"(gru_sequences + the {n_pairs} models stacked, one forward; model loading excluded)",
    )

    from pairs_assets.assets.trading_signals import compute_sector_signals
    from pairs_assets.settings import StrategySettings

    with tempfile.TemporaryDirectory() as tmp:
        store = MarketDataStore(database_url=f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        from pairs_assets import partitions

        sessions = partitions.sessions_in_range("2022-01-03", "2022-12-28")[-120:]
        stamps = pd.DatetimeIndex([partitions.session_close_utc(d) for d in sessions])
        closes = []
        for pair in inputs:
            for leg, column in ((pair.params.y, "y"), (pair.params.x, "x")):
                values = pair.history[column].to_numpy()
                closes.append(pd.DataFrame({"symbol": leg, "timestamp": stamps, "close": values}))
                closes.append(
                    pd.DataFrame(
                        {
                            "symbol": leg,
                            "timestamp": [pd.Timestamp("2022-12-29T15:00Z")],
                            "close": [pair.latest_y if column == "y" else pair.latest_x],
                            "source": "live",
                        }
                    )
                )
        frame = pd.concat(closes, ignore_index=True)
        frame["source"] = frame["source"].fillna("bench")
        for column in ["open", "high", "low", "volume", "trade_count", "vwap"]:
            frame[column] = np.nan
        store.upsert_bars(frame, context="bench")

        def sector():
            signals, skipped, failures = compute_sector_signals(
                config=config,
                store=store,
                history_source="bench",
                strategy=StrategySettings(),
                model_registry=Models(),
                cutoff=pd.Timestamp("2022-12-30T00:00Z"),
                history_sessions=120,
                drift_window=20,
                drift_tolerance=0.2,
            )
            assert len(signals) == n_pairs, (skipped, failures)

        row(
            f"signals, {n_pairs} pairs, whole sector run (asset core)",
            f"{timed(sector, 3):.1f} ms",
            "(SQLite reads of 200 symbols included)",
        )


def bench_throughput(total_bars: int, raw: bool) -> None:
    symbols = [f"S{k:02d}" for k in range(20)]
    steps = max(1, total_bars // len(symbols))
    with tempfile.TemporaryDirectory() as tmp:
        store = MarketDataStore(database_url=f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        store.upsert_bars(synthetic_bars(symbols, steps), context="bench")
        with recycler_in_thread(store, RecyclerSettings(port=0, mode="single_pass", speed=math.inf)) as recycler:
            client = StreamClient(recycler.ws_url, symbols, raw=raw).start()
            wait_until(lambda: bool(client.received), 30, interval=0.001)
            started = time.perf_counter()
            first_batch = len(client.received)
            done = wait_until(lambda: len(client.received) >= steps * len(symbols), 300, interval=0.01)
            elapsed = time.perf_counter() - started
            client.stop()
    n = len(client.received) - first_batch
    row(
        f"recycler → alpaca-py StockDataStream ({'raw dicts' if raw else 'Bar objects'})",
        f"{n / elapsed:,.0f} bars/s",
        f"({n} bars of {len(symbols)} symbols in {elapsed:.2f} s{'' if done else ', INCOMPLETE'})",
    )


def bench_lag(seconds: float, flush_interval: float, steps_per_second: float = 10.0) -> None:
    symbols = [f"S{k:02d}" for k in range(10)]
    steps = int(seconds * steps_per_second)
    lags: list[float] = []

    def on_written(frame: pd.DataFrame, written_at: float) -> None:
        emitted = frame["timestamp"].map(lambda t: t.value / 1e9).to_numpy()
        lags.extend((written_at - emitted) * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        store = MarketDataStore(database_url=f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        store.upsert_bars(synthetic_bars(symbols, steps), context="bench")
        settings = RecyclerSettings(port=0, mode="single_pass", speed=60.0 * steps_per_second)
        with recycler_in_thread(store, settings) as recycler:
            stream_settings = StreamSettings.from_env(
                symbols, url=recycler.ws_url, environ={}, flush_interval_s=flush_interval, report_interval_s=3600
            )
            ingestor = StreamIngestor(store, stream_settings, echo=lambda line: None, on_written=on_written)
            thread = threading.Thread(target=ingestor.run, kwargs={"max_seconds": seconds + 30}, daemon=True)
            thread.start()
            recycler.wait_finished(seconds + 20)
            wait_until(lambda: ingestor.stats.written >= steps * len(symbols), 10)
            ingestor.stop()
            thread.join(20)
    q = np.percentile(lags, [50, 95, 100]) if lags else [float("nan")] * 3
    row(
        f"lag replayed bar → stored row (flush {flush_interval:g} s)",
        f"median {q[0]:.0f} ms, p95 {q[1]:.0f} ms, max {q[2]:.0f} ms",
        f"({len(lags)} bars, {steps_per_second:g} steps/s × {len(symbols)} symbols, SQLite)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--bars", type=int, default=40_000)
    parser.add_argument("--lag-seconds", type=float, default=6.0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    bench_signals(args.pairs)
    print("recycler throughput")
    bench_throughput(args.bars, raw=False)
    bench_throughput(args.bars, raw=True)
    print("lag")
    bench_lag(args.lag_seconds, 0.1)
    bench_lag(args.lag_seconds, 1.0)
    width = max(len(r[0]) for r in ROWS)
    print("\n| measure | value | note |\n|---|---|---|")
    for measure, value, note in ROWS:
        print(f"| {measure:<{width}} | {value} | {note} |")


if __name__ == "__main__":
    main()
