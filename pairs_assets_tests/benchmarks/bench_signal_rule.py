"""Benchmark: the signal decision per bar for 100 pairs with state (the one trading rule, quant.rule).

Run: ``.venv/bin/python pairs_assets_tests/benchmarks/bench_signal_rule.py [--pairs 100] [--bars 60]``

A path of ``--bars`` 5-minute bars for ``--pairs`` synthetic cointegrated pairs (120 sessions of
closes each, the spread driven through the entry, exit and stop bands so that states change),
each bar applied to every pair's state in order:

* rule only — :func:`pairs_assets.quant.rule.step` on the pairs' states (z given);
* signal math with state — :func:`pairs_assets.quant.signals.compute_pair_signal` per pair
  (spread, GARCH z, sizing, the rule's step, confidence, drift);
* + GRU — the asset's :func:`~pairs_assets.assets.trading_signals.gru_probabilities` (one
  vectorised feature pass, the pairs' models stacked in one forward; CPU) once per bar, then the math;
* state I/O — the sector's ``pair_states`` read and written back (SQLite, 100 rows).

Prints a table of per-bar medians; asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the test helpers, when run as a script

import numpy as np
import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--bars", type=int, default=60)
    args = parser.parse_args()

    import torch

    from pairs_assets.assets.trading_signals import gru_probabilities, read_pair_states, state_row
    from pairs_assets.quant import rule
    from pairs_assets.quant import signals as sig
    from pairs_assets.quant.features import FEATURE_NAMES
    from pairs_assets.quant.gru import GRUClassifier
    from pairs_assets_tests.benchmarks.bench_live import synthetic_pairs
    from resources.market_data import MarketDataStore, pair_states_table

    n = args.pairs
    inputs, config = synthetic_pairs(n)
    terms = {p.pair_id: p for p in config.pairs}
    limits = sig.RiskLimits()
    torch.manual_seed(0)
    models = {f"v{k}": GRUClassifier(n_features=len(FEATURE_NAMES)).eval() for k in range(n)}

    class Models:
        def load_model(self, name, version):
            return models[version]

    # a z path per pair through the bands: 0 → 2.6 (entry) → 3.8 (stop) → 2.5 (stopped) → 1 → 2.4 → 0.2 (exit)
    shape = np.array([0.0, 2.6, 2.2, 3.8, 2.5, 1.0, 2.4, 1.2, 0.2, -2.3, -1.0, 0.0])
    rng = np.random.default_rng(1)
    z_path = np.array([np.roll(np.resize(shape, args.bars), k % len(shape)) for k in range(n)]) + rng.normal(
        0, 0.05, (n, args.bars)
    )
    bars = pd.date_range("2022-12-29T14:35Z", periods=args.bars, freq="5min")

    def prices_for(pair: sig.PairInput, z: float) -> tuple[float, float]:
        p = pair.params
        _, level, _ = sig.garch_zscore(0.0, 0.0, p.spread_std, p.garch)
        x = pair.latest_x
        return float(np.exp(p.hedge_ratio * np.log(x) + p.intercept + p.spread_mean + z * level)), x

    rows: dict[str, list[float]] = {
        "rule only": [],
        "signal math with state": [],
        "+ GRU (batched, CPU)": [],
        "state I/O (SQLite)": [],
    }
    states = {p.params.pair_id: rule.PairState.flat(p.params.pair_id, p.params.y, p.params.x) for p in inputs}
    rule_states = dict(states)
    actions: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = MarketDataStore(database_url=f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        for b, bar in enumerate(bars):
            # rule only
            start = time.perf_counter()
            for k, pair in enumerate(inputs):
                pid = pair.params.pair_id
                obs = rule.Observation(
                    bar,
                    "2022-12-29",
                    0,
                    float(z_path[k, b]),
                    terms[pid],
                    sizing={"y_fraction": 0.01, "x_fraction": 0.01},
                )
                rule_states[pid], _ = rule.step(rule_states[pid], obs)
            rows["rule only"].append((time.perf_counter() - start) * 1000)
            priced = [
                dataclasses.replace(pair, latest_y=prices_for(pair, z_path[k, b])[0], bar_timestamp=bar)
                for k, pair in enumerate(inputs)
            ]
            # the math with state
            start = time.perf_counter()
            out = [
                sig.compute_pair_signal(
                    pair,
                    0.6,
                    limits,
                    n,
                    state=states[pair.params.pair_id],
                    terms=terms[pair.params.pair_id],
                    session="2022-12-29",
                )
                for pair in priced
            ]
            rows["signal math with state"].append((time.perf_counter() - start) * 1000)
            # + GRU: the probabilities, then the math (from the same states)
            start = time.perf_counter()
            probabilities, _, _ = gru_probabilities(priced, Models(), 10)
            for pair in priced:
                sig.compute_pair_signal(
                    pair,
                    probabilities[pair.params.pair_id],
                    limits,
                    n,
                    state=states[pair.params.pair_id],
                    terms=terms[pair.params.pair_id],
                    session="2022-12-29",
                )
            rows["+ GRU (batched, CPU)"].append((time.perf_counter() - start) * 1000)
            states = {s.pair_id: s.state for s in out}
            for s in out:
                actions[s.action] = actions.get(s.action, 0) + 1
            # state I/O
            start = time.perf_counter()
            read_pair_states(store, "bench")
            store.upsert_rows(
                pair_states_table,
                [state_row(st, sector="bench", as_of="2022-12-28", run_id="bench") for _, st in sorted(states.items())],
            )
            rows["state I/O (SQLite)"].append((time.perf_counter() - start) * 1000)

    print(f"signal decision per bar, {n} pairs with state, {args.bars} bars (median / p95 / max ms per bar)")
    print(f"{'measure':<28} {'median':>8} {'p95':>8} {'max':>8}")
    for name, samples in rows.items():
        q = np.percentile(samples[1:] or samples, [50, 95, 100])  # the first bar warms up
        print(f"{name:<28} {q[0]:>8.2f} {q[1]:>8.2f} {q[2]:>8.2f}")
    print("actions over the path: " + ", ".join(f"{a} {c}" for a, c in sorted(actions.items())))
    print(
        f"held at the end: {sum(1 for st in states.values() if st.side)} of {n}; "
        f"stopped flat: {sum(1 for st in states.values() if st.stopped)}"
    )


if __name__ == "__main__":
    main()
