"""Benchmark: batched GARCH(1,1) (``fit_garch_many``) against per-pair arch (``fit_garch``).

Run: ``python pairs_assets_tests/benchmarks/bench_garch.py [n_series]`` (default 1,000), or
``python pairs_assets_tests/benchmarks/bench_garch.py --stage [every]``: the GARCH *stage* per
partition (``garch_stage``, estimator arch vs batched) on the sampled partitions described in
:func:`stage`.

Series: spread log returns of every same-sector pair of the embedded dataset (OLS hedge ratio per
window) over windows of 1,000 returns spread evenly over 1990-2022 — the garch_models stage's
input at its default garch_window=1000, garch_holdout=250. Timed, medians of repeats, each after a
warm-up call (the first call in a fresh process also loads or compiles the numba kernels; that
time is printed separately):
- ``fit_garch`` per pair (two arch fits, forecasts, diagnostics — what the stage runs today),
  on a sample of the series;
- a single arch fit (``arch_model(...).fit()``) per series, on the same sample;
- ``fit_garch_many`` on all series, arch fallbacks included.
Agreement: ``fit_garch`` on every series once, then the share of log-likelihoods (full-sample fit)
within 1e-3 of arch, of forecast ratios within 1e-3, and how many fits fell back to arch.
Prints tables; asserts nothing (the tests check correctness).
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pairs_assets.quant.garch import fit_garch, fit_garch_many  # noqa: E402
from pairs_assets_tests.quant.test_garch_batch import HOLDOUT, same_sector_spreads  # noqa: E402

SAMPLE = 60  # series timed with arch (every series is still compared once)
REPEATS = 3


def median_seconds(function, repeats: int = REPEATS) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    n_series = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    labels, series = same_sector_spreads(windows_per_pair=-(-n_series // 32))
    labels, series = labels[:n_series], series[:n_series]
    sample = series[:: max(1, len(series) // SAMPLE)][:SAMPLE]

    start = time.perf_counter()
    fit_garch_many(series[:1], holdout=HOLDOUT)
    first_call = time.perf_counter() - start

    from arch import arch_model

    def single_arch_fits():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for values in sample:
                arch_model(values * 100.0, mean="Constant", vol="GARCH", p=1, q=1).fit(disp="off")

    per_pair = median_seconds(lambda: [fit_garch(values, holdout=HOLDOUT) for values in sample]) / len(sample)
    single = median_seconds(single_arch_fits) / len(sample)
    batched = median_seconds(lambda: fit_garch_many(series, holdout=HOLDOUT, labels=labels)) / len(series)

    fits = fit_garch_many(series, holdout=HOLDOUT, labels=labels)
    reference = [fit_garch(values, holdout=HOLDOUT) for values in series]
    gaps = np.array([f.loglik - r.loglik for f, r in zip(fits, reference)])
    ratio_gaps = np.array([abs(f.forecast_ratio - r.forecast_ratio) for f, r in zip(fits, reference)])
    estimators: dict[str, int] = {}
    for fit in fits:
        estimators[fit.estimator] = estimators.get(fit.estimator, 0) + 1

    print(
        f"GARCH(1,1) on {len(series)} real same-sector spreads (1,000 returns, holdout {HOLDOUT}); "
        f"arch timed on {len(sample)} of them; medians of {REPEATS} repeats"
    )
    print(f"{'path':<44} {'ms per series':>14} {'vs fit_garch':>13} {'vs 1 arch fit':>14}")
    for name, seconds in (
        ("fit_garch (2 arch fits + forecasts + tests)", per_pair),
        ("single arch fit", single),
        ("fit_garch_many (batched, fallbacks incl.)", batched),
    ):
        print(f"{name:<44} {seconds * 1e3:>14.2f} {per_pair / seconds:>12.1f}x {single / seconds:>13.1f}x")
    print(f"first fit_garch_many call in this process (numba cache load or compile): {first_call:.2f} s")
    print()
    print(f"{'agreement with fit_garch (arch)':<44} {'share':>8}")
    print(f"{'|loglik - arch| < 1e-3':<44} {np.mean(np.abs(gaps) < 1e-3):>8.3f}")
    print(f"{'loglik higher than arch by > 1e-3':<44} {np.mean(gaps > 1e-3):>8.3f}")
    print(f"{'loglik lower than arch by > 1e-3':<44} {np.mean(gaps < -1e-3):>8.3f}")
    print(f"{'|forecast_ratio - arch| < 1e-3':<44} {np.mean(ratio_gaps < 1e-3):>8.3f}")
    print()
    print(f"{'estimator (full-sample/training)':<44} {'series':>8}")
    for name, count in sorted(estimators.items()):
        print(f"{name:<44} {count:>8}")


def stage(every: int = 21) -> None:
    """The garch_models stage per partition, before (arch pair by pair) and after (batched).

    Partitions: every ``every``-th session of 2018-2022 × the embedded sectors with at least one
    cointegrated pair at the seed settings; the stage's real inputs (the cointegration stage's
    pairs, the GARCH window's closes) built as the walk-forward builds them. Median of REPEATS
    timings of each partition's ``garch_stage`` call; agreement of the stage's frames.
    """
    import pandas as pd

    from pairs_assets import partitions
    from pairs_assets.quant.stages import cointegration_stage, correlation_stage, garch_stage
    from pairs_assets.settings import EMBEDDED_BARS_FILE, EMBEDDED_HISTORY_START, StrategySettings, paths
    from pairs_assets.universe import load_universe

    strategy = StrategySettings.preset("seed")
    sectors = load_universe(paths().universe_file).sectors
    closes_all = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True)
    sessions = partitions.sessions_in_range("2018-01-02", "2022-12-28")[::every]
    cases = []
    for session in sessions:
        window = partitions.window_sessions(
            str(session.date()), strategy.garch_sessions, history_start=EMBEDDED_HISTORY_START
        )
        for sector, symbols in sorted(sectors.items()):
            symbols = sorted(symbols)
            if len(symbols) < 2:
                continue
            closes = closes_all.reindex(window)[symbols]
            formation = closes.iloc[-strategy.formation_window :]
            result, _ = cointegration_stage(formation, correlation_stage(formation, strategy).matrix, strategy)
            frame = result.pairs
            if len(frame):
                cases.append((f"{session.date()}|{sector}", closes, frame))
    garch_stage(cases[0][1], cases[0][2], strategy)  # warm-up: the numba kernels load
    arch_ms, batched_ms, worst = [], [], 0.0
    estimators: dict[str, int] = {}
    for _key, closes, pairs in cases:
        arch_ms.append(median_seconds(lambda: garch_stage(closes, pairs, strategy, estimator="arch")) * 1e3)
        batched_ms.append(median_seconds(lambda: garch_stage(closes, pairs, strategy)) * 1e3)
        a, b = garch_stage(closes, pairs, strategy, estimator="arch"), garch_stage(closes, pairs, strategy)
        worst = max(worst, float(np.max(np.abs(a["loglik"].to_numpy() - b["loglik"].to_numpy()))))
        for name in b["estimator"]:
            estimators[name] = estimators.get(name, 0) + 1
    n_pairs = sum(len(p) for _, _, p in cases)
    print(
        f"garch_models stage on {len(cases)} partitions with pairs (every {every}th session 2018-2022 × sectors), "
        f"{n_pairs} pairs ({n_pairs / len(cases):.1f} per partition); medians of {REPEATS} repeats per partition"
    )
    print(f"{'estimator':<36} {'ms/partition (median)':>22} {'ms/partition (mean)':>20} {'ms/pair':>9}")
    for name, values in (("arch, pair by pair (before)", arch_ms), ("batched fit_garch_many (after)", batched_ms)):
        print(
            f"{name:<36} {statistics.median(values):>22.1f} {statistics.mean(values):>20.1f} {sum(values) / n_pairs:>9.2f}"
        )
    print(
        f"speed-up of the stage: {sum(arch_ms) / sum(batched_ms):.1f}x in total, "
        f"median per partition {statistics.median(a / b for a, b in zip(arch_ms, batched_ms)):.1f}x"
    )
    print(
        f"largest |loglik batched - arch| over these fits: {worst:.2e}; estimators: {dict(sorted(estimators.items()))}"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--stage":
        stage(int(sys.argv[2]) if len(sys.argv) > 2 else 21)
    else:
        main()
