"""The Sharpe intervals' circular block bootstrap against known cases: coverage of the true Sharpe
on i.i.d. normal returns, wider intervals with longer blocks on autocorrelated returns (and not on
i.i.d. ones), the paired difference, seeding."""

import math

import numpy as np
import pandas as pd
import pytest

from pairs_assets.quant.walkforward.metrics import block_bootstrap_sharpes, sharpe_difference, sharpe_interval


def test_the_interval_covers_the_true_sharpe_at_about_the_nominal_rate():
    # i.i.d. normal daily returns, true annualised Sharpe 0.05·√252 ≈ 0.79; 200 samples of 1,000 days
    # (measured: 97% with block 1, 95.5% with block 21)
    true = 0.05 * math.sqrt(252)
    for block in (1, 21):
        covered = 0
        for seed in range(200):
            pnl = np.random.default_rng(1000 + seed).normal(0.05, 1.0, 1000)
            low, high = sharpe_interval(pnl, block=block, n_boot=300, seed=seed)
            covered += low <= true <= high
        # binomial sd at 95% over 200 draws: 1.5 points
        assert 0.90 <= covered / 200 <= 0.99, (block, covered)


def test_the_interval_is_about_the_sharpe_estimators_own_width_on_iid_returns():
    pnl = np.random.default_rng(7).normal(0.03, 1.0, 4000)
    low, high = sharpe_interval(pnl, block=1, n_boot=2000, seed=1)
    # Lo (2002): sd of the per-period Sharpe ≈ √((1 + SR²/2)/T) → 95% width ≈ 2·1.96·sd·√252
    expected = 2 * 1.96 * math.sqrt((1 + 0.03**2 / 2) / 4000) * math.sqrt(252)
    assert (high - low) == pytest.approx(expected, rel=0.1)


def ar1(phi: float, n: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 1.0, n)
    out = np.empty(n)
    out[0] = noise[0]
    for t in range(1, n):
        out[t] = phi * out[t - 1] + noise[t]
    return out + 0.05


def test_blocks_widen_the_interval_on_autocorrelated_returns_only():
    # AR(1) with φ = 0.6: the variance of the mean is (1 + φ)/(1 − φ) = 4 times the i.i.d. one, so
    # a bootstrap that keeps the dependence (21-session blocks) is about twice as wide as the i.i.d.
    ratios = []
    for seed in range(5):
        pnl = ar1(0.6, 3000, seed)
        one = sharpe_interval(pnl, block=1, n_boot=1000, seed=seed)
        blocks = sharpe_interval(pnl, block=21, n_boot=1000, seed=seed)
        ratios.append((blocks[1] - blocks[0]) / (one[1] - one[0]))
    assert 1.6 < np.mean(ratios) < 2.3, ratios
    iid = np.random.default_rng(3).normal(0.05, 1.0, 3000)
    one, blocks = sharpe_interval(iid, block=1, n_boot=1000), sharpe_interval(iid, block=21, n_boot=1000)
    assert 0.8 < (blocks[1] - blocks[0]) / (one[1] - one[0]) < 1.25


def test_the_bootstrap_sharpes_equal_a_direct_resample():
    # the cumulative-sum shortcut equals drawing the blocks and computing the Sharpe directly
    pnl = np.random.default_rng(0).normal(0.01, 1.0, 100)
    block, n_boot, seed = 7, 50, 11
    draws = block_bootstrap_sharpes(pnl, block, n_boot, seed)
    k = -(-100 // block)
    starts = np.random.default_rng(seed).integers(0, 100, size=(n_boot, k))
    for r in range(n_boot):
        index = np.concatenate([(s + np.arange(block)) % 100 for s in starts[r]])[:100]
        sample = pnl[index]
        assert draws[r] == pytest.approx(sample.mean() / sample.std(ddof=1) * math.sqrt(252), rel=1e-9)


def test_seeded_paired_difference_and_degenerate_inputs():
    days = pd.bdate_range("2000-01-03", periods=2000)
    rng = np.random.default_rng(5)
    a = pd.Series(rng.normal(0.05, 1.0, 2000), index=days)
    b = a + pd.Series(rng.normal(0.0, 0.1, 2000), index=days)  # almost the same strategy
    diff, low, high = sharpe_difference(a, b, seed=2)
    assert (diff, low, high) == sharpe_difference(a, b, seed=2)  # deterministic
    assert low <= diff <= high
    alone = sharpe_interval(a.to_numpy(), seed=2)
    assert high - low < 0.25 * (alone[1] - alone[0])  # paired: the common noise cancels
    # only the common sessions count
    assert sharpe_difference(a, b.iloc[::2], seed=2)[0] == pytest.approx(
        sharpe_difference(a.iloc[::2], b.iloc[::2], seed=2)[0], rel=1e-12
    )
    assert all(math.isnan(v) for v in sharpe_interval([0.01]))
    assert sharpe_interval(np.zeros(50)) == (0.0, 0.0)  # never trades: Sharpe 0 in every resample
    with pytest.raises(ValueError, match="block must be an integer >= 1"):
        sharpe_interval(a.to_numpy(), block=0)
