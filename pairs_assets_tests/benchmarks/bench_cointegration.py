"""Benchmark: our vectorised Engle-Granger vs a loop over statsmodels ``coint``.

Run: ``python pairs_assets_tests/benchmarks/bench_cointegration.py``

On the embedded dataset (all 190 pairs of its 20 symbols, both orderings each, windows of 60 and
250 sessions ending 2022-12-28) it times the Engle-Granger step of ``find_cointegrated_pairs``
(``engle_granger_many`` over the 380 orderings) against ``statsmodels.tsa.stattools.coint(y, x,
trend="c", autolag="aic")`` called once per ordering, and prints pairs per second for both and
the largest p-value difference. It asserts nothing about time (timings depend on the machine and
its load); the equality of the numbers is asserted in the test suite.

Scale (``python pairs_assets_tests/benchmarks/bench_cointegration.py --scale [n_symbols]``, default
500): seeded synthetic random walks over the default 60-session formation window, correlation_min
-1 so that every pair is a candidate (124,750 pairs, 249,500 orderings at 500 symbols). Times
``find_cointegrated_pairs`` (median of repeats), its peak traced allocation (tracemalloc, one
separate call) and the process's peak RSS, then the blocking p-value gate
(``checks.cointegrated_pairs_results``: every stored p-value against the threshold, statsmodels
re-test of at most ``EG_RETEST_MAX`` pairs) against re-testing every passing pair with statsmodels.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.tsa.stattools import coint

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pairs_assets.quant.cointegration import engle_granger_many  # noqa: E402

DATASET = ROOT / "pairs_assets" / "data" / "sp500_dataset.csv.gz"
AS_OF = "2022-12-28"
WINDOWS = (60, 250)
OUR_REPEATS = 20
STATSMODELS_REPEATS = 3


def median_seconds(function, repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls (after one warm-up) and the last result."""
    result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    closes = pd.read_csv(DATASET, index_col="Date", parse_dates=True).loc[:AS_OF]
    log_prices = np.log(closes)
    symbols = sorted(log_prices.columns)
    pairs = list(itertools.combinations(symbols, 2))
    dependents = [a for a, _ in pairs] + [b for _, b in pairs]
    regressors = [b for _, b in pairs] + [a for a, _ in pairs]

    rows = []
    for window in WINDOWS:
        frame = log_prices.iloc[-window:]
        y = frame[dependents].to_numpy()
        x = frame[regressors].to_numpy()

        ours_s, (_, our_p) = median_seconds(lambda: engle_granger_many(y, x, autolag="aic"), OUR_REPEATS)

        def statsmodels_loop():
            return np.array([coint(y[:, j], x[:, j], trend="c", autolag="aic")[1] for j in range(y.shape[1])])

        ref_s, ref_p = median_seconds(statsmodels_loop, STATSMODELS_REPEATS)
        rows.append((window, len(pairs), len(pairs) / ours_s, len(pairs) / ref_s, float(np.max(np.abs(our_p - ref_p)))))

    print(f"Engle-Granger, both orderings per pair, {len(symbols)} symbols, windows ending {AS_OF}")
    print(
        f"{'window':>6}  {'pairs':>5}  {'our pairs/s':>12}  {'statsmodels pairs/s':>19}  {'speed-up':>8}  {'max |Δp|':>9}"
    )
    for window, n_pairs, ours, ref, max_dp in rows:
        print(f"{window:>6}  {n_pairs:>5}  {ours:>12,.0f}  {ref:>19,.1f}  {ours / ref:>7,.0f}x  {max_dp:>9.1e}")


def scale(n_symbols: int, window: int = 60, repeats: int = 3) -> None:
    import resource
    import tracemalloc

    from pairs_assets.checks import cointegrated_pairs_results
    from pairs_assets.quant.cointegration import find_cointegrated_pairs
    from pairs_assets.quant.correlation import correlation_long
    from pairs_assets.settings import StrategySettings

    rng = np.random.default_rng(2024)
    index = pd.bdate_range("2022-01-03", periods=window)
    log_prices = pd.DataFrame(
        4.0 + np.cumsum(rng.normal(0.0, 0.01, (window, n_symbols)), axis=0),
        index=index,
        columns=[f"S{i:03d}" for i in range(n_symbols)],
    )
    correlations = correlation_long(np.exp(log_prices))

    def screen():
        return find_cointegrated_pairs(log_prices, correlations, correlation_min=-1.0, pvalue_max=0.05)

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = screen()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    screen()
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux

    pairs = result.pairs
    strategy = StrategySettings(correlation_min=-1.0)
    gate_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gate = {r.check_name: r for r in cointegrated_pairs_results(pairs, log_prices, strategy)}["eg_pvalue_below_max"]
        gate_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    for row in pairs.itertuples():
        coint(log_prices[row.y].to_numpy(), log_prices[row.x].to_numpy(), trend="c", autolag="aic")
    retest_all = time.perf_counter() - start

    n_candidates = len(correlations)
    print(
        f"Screening {n_symbols} synthetic random walks, {window}-session window, every pair a candidate; "
        f"medians of {repeats}"
    )
    print(
        f"{'candidates':>10}  {'orderings':>9}  {'passing':>7}  {'screen s':>8}  {'traced peak':>11}  {'peak RSS':>9}"
    )
    print(
        f"{n_candidates:>10,}  {2 * n_candidates:>9,}  {len(pairs):>7,}  {statistics.median(times):>8.1f}  "
        f"{traced_peak / 2**30:>9.2f} GB  {max_rss / 2**30:>6.2f} GB"
    )
    print(f"{'p-value gate':<44} {'seconds':>8}")
    print(
        f"{'gate (' + str(gate.metadata['retested_with_statsmodels'].value) + ' re-tested, every p vs threshold)':<44} "
        f"{statistics.median(gate_times):>8.1f}"
    )
    print(f"{'statsmodels re-test of all ' + str(len(pairs)) + ' passing pairs':<44} {retest_all:>8.1f}")
    print(f"gate passed: {gate.passed}; selection: {gate.metadata['retest_selection'].value}")


if __name__ == "__main__":
    if "--scale" in sys.argv:
        rest = [a for a in sys.argv[1:] if a != "--scale"]
        scale(int(rest[0]) if rest else 500)
    else:
        main()
