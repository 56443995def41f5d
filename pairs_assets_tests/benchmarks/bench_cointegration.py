"""Benchmark: our vectorised Engle-Granger vs a loop over statsmodels ``coint``.

Run: ``python pairs_assets_tests/benchmarks/bench_cointegration.py``

On the embedded dataset (all 190 pairs of its 20 symbols, both orderings each, windows of 60 and
250 sessions ending 2022-12-28) it times the Engle-Granger step of ``find_cointegrated_pairs``
(``engle_granger_many`` over the 380 orderings) against ``statsmodels.tsa.stattools.coint(y, x,
trend="c", autolag="aic")`` called once per ordering, and prints pairs per second for both and
the largest p-value difference. It asserts nothing about time (timings depend on the machine and
its load); the equality of the numbers is asserted in the test suite.
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
    print(f"{'window':>6}  {'pairs':>5}  {'our pairs/s':>12}  {'statsmodels pairs/s':>19}  {'speed-up':>8}  {'max |Δp|':>9}")
    for window, n_pairs, ours, ref, max_dp in rows:
        print(f"{window:>6}  {n_pairs:>5}  {ours:>12,.0f}  {ref:>19,.1f}  {ours / ref:>7,.0f}x  {max_dp:>9.1e}")


if __name__ == "__main__":
    main()
