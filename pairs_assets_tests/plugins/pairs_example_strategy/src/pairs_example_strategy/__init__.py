"""A third-party strategy plugin: the most correlated pairs of a formation window, OLS hedge ratio."""

import itertools

import numpy as np
import pandas as pd

from pairs_assets.strategies.periodic import PeriodicParams, PeriodicStrategy


class CorrelationBands(PeriodicStrategy):
    """The most correlated pairs (daily log returns), an OLS hedge ratio of log prices, ±2/0/4 σ bands."""

    summary = "most correlated pairs, OLS hedge ratio, open at 2 sigma, close at the mean, stop at 4"
    Params = PeriodicParams  # formation, every, phase, max_pairs, entry_z, exit_z, stop_z

    def select(self, closes_window: pd.DataFrame, params) -> pd.DataFrame:
        logs = np.log(closes_window.dropna(axis=1))
        corr = logs.diff().corr()
        rows = []
        for y, x in itertools.combinations(sorted(logs.columns), 2):
            beta, alpha = np.polyfit(logs[x], logs[y], 1)
            spread = logs[y] - beta * logs[x] - alpha
            rows.append((f"{y}-{x}", y, x, beta, alpha, spread.mean(), spread.std(ddof=0), corr.loc[y, x]))
        columns = ["pair_id", "y", "x", "hedge_ratio", "intercept", "spread_mean", "spread_std", "correlation"]
        pairs = pd.DataFrame(rows, columns=columns)
        return pairs.sort_values(["correlation", "pair_id"], ascending=[False, True], kind="mergesort")
