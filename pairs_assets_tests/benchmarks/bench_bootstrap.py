"""How well do the walk-forward's Sharpe intervals cover, and what do they cost? (issue 18 item 2)

Generated daily returns with a known Sharpe — i.i.d. normal, AR(1) with φ = 0.3 and 0.6, and a
sparse strategy-like series (flat most days, in position 10% of them, in runs of 5 sessions) —
are drawn for many seeds; for block lengths 1, 5, 21 and 63 the table prints how often the 95%
circular block-bootstrap interval covers the true Sharpe, and its mean width. The true Sharpe of
the dependent series is that of the process (mean/sd of the stationary distribution). Then the
time of one interval and one paired difference for 7,000 sessions (1995–2022). Asserts nothing.

    .venv/bin/python pairs_assets_tests/benchmarks/bench_bootstrap.py [--seeds 200] [--sessions 2000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from pairs_assets.quant.walkforward.metrics import sharpe_difference, sharpe_interval


def ar1(phi: float, n: int, rng, mean: float) -> np.ndarray:
    noise = rng.normal(0.0, math.sqrt(1 - phi**2), n + 200)  # stationary sd 1
    out = np.empty(n + 200)
    out[0] = noise[0] / math.sqrt(1 - phi**2)
    for t in range(1, n + 200):
        out[t] = phi * out[t - 1] + noise[t]
    return out[200:] + mean


def sparse(n: int, rng, mean: float) -> np.ndarray:
    on = np.zeros(n, dtype=bool)
    for start in rng.integers(0, n - 5, size=n // 50):
        on[start : start + 5] = True
    return np.where(on, rng.normal(mean, 1.0, n), 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=2000)
    args = parser.parse_args()
    n, mean = args.sessions, 0.04
    processes = {
        "iid normal": (lambda rng: rng.normal(mean, 1.0, n), mean),
        "AR(1) phi 0.3": (lambda rng: ar1(0.3, n, rng, mean), mean),
        "AR(1) phi 0.6": (lambda rng: ar1(0.6, n, rng, mean), mean),
    }
    # the sparse series' true Sharpe, from one very long draw
    long = sparse(2_000_000, np.random.default_rng(12345), 0.1)
    processes["sparse (10% in position)"] = (lambda rng: sparse(n, rng, 0.1), long.mean() / long.std())
    print(f"95% interval of the annualised Sharpe, {n} sessions, {args.seeds} seeds, 1,000 resamples")
    print(
        f"{'process':<26} {'true SR':>8} " + " ".join(f"{'cover b=' + str(b):>11} {'width':>6}" for b in (1, 5, 21, 63))
    )
    for name, (draw, per_period) in processes.items():
        true = per_period * math.sqrt(252)
        cells = []
        for block in (1, 5, 21, 63):
            covered, widths = 0, []
            for seed in range(args.seeds):
                low, high = sharpe_interval(draw(np.random.default_rng(seed)), block=block, n_boot=1000, seed=seed)
                covered += low <= true <= high
                widths.append(high - low)
            cells.append(f"{covered / args.seeds:>11.3f} {np.mean(widths):>6.2f}")
        print(f"{name:<26} {true:>+8.2f} " + " ".join(cells))
    x = np.random.default_rng(0).normal(0, 1, 7000)
    series = pd.Series(x, index=pd.bdate_range("1995-01-02", periods=7000))
    t0 = time.perf_counter()
    for _ in range(20):
        sharpe_interval(x)
    one = (time.perf_counter() - t0) / 20
    t0 = time.perf_counter()
    for _ in range(20):
        sharpe_difference(series, series * 0.5 + 0.1)
    paired = (time.perf_counter() - t0) / 20
    print(
        f"\n7,000 sessions, 2,000 resamples, 21-session blocks: interval {one * 1000:.0f} ms, paired difference {paired * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
