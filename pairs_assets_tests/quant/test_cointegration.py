"""Cointegration: known answers from statsmodels on the embedded data, planted pairs, null rate."""

import itertools
import math
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests
from statsmodels.tsa.adfvalues import mackinnonp
from statsmodels.tsa.stattools import coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from pairs_assets.quant.cointegration import (
    PAIRS_COLUMNS,
    REJECTED_COLUMNS,
    _mackinnon_pvalues,
    benjamini_hochberg,
    engle_granger,
    engle_granger_many,
    find_cointegrated_pairs,
    half_life,
    hedge_ratio,
    johansen_trace_many,
)
from pairs_assets.quant.correlation import correlation_long
from pairs_assets.quant.prices import InsufficientHistoryError, UnusableSeriesError
from pairs_assets_tests.synthetic import synthetic_panel

DATASET = Path(__file__).resolve().parents[2] / "pairs_assets" / "data" / "sp500_dataset.csv.gz"
SYMBOLS = ["KO", "PEP", "XOM", "CVX", "JPM", "BAC", "AAPL", "MSFT"]


@lru_cache(maxsize=1)
def real_log_prices() -> pd.DataFrame:
    return np.log(pd.read_csv(DATASET, index_col="Date", parse_dates=True))


def real_cases():
    """(window, y, x): 60- and 250-session windows at three end dates × 12 orderings, and a
    1000-session window (coint is slow there: ~0.4 s a call) for KO/PEP both ways."""
    prices = real_log_prices()
    n = len(prices)
    for length in (60, 250):
        for end in (n, n - 1500, n - 4000):
            for y_sym, x_sym in itertools.permutations(SYMBOLS[:4], 2):
                yield prices.iloc[end - length : end], y_sym, x_sym
    for y_sym, x_sym in (("KO", "PEP"), ("PEP", "KO")):
        yield prices.iloc[-1000:], y_sym, x_sym


@pytest.mark.parametrize("autolag", ["aic", "bic", None])
def test_engle_granger_reproduces_coint_on_real_windows(autolag):
    worst_p = worst_stat = 0.0
    for window, y_sym, x_sym in real_cases():
        result = engle_granger(window[y_sym], window[x_sym], autolag=autolag)
        ref_stat, ref_p, ref_crit = coint(window[y_sym], window[x_sym], trend="c", autolag=autolag)
        worst_p = max(worst_p, abs(result.pvalue - ref_p))
        worst_stat = max(worst_stat, abs(result.stat - ref_stat))
        assert list(result.critical_values.values()) == pytest.approx(list(ref_crit), abs=1e-12)
    assert worst_p < 1e-8 and worst_stat < 1e-8


def test_engle_granger_with_explicit_maxlag_and_tstat_autolag():
    window = real_log_prices().iloc[-250:]
    for maxlag in (0, 1, 5):
        ours = engle_granger(window.KO, window.PEP, maxlag=maxlag, autolag="aic")
        ref = coint(window.KO, window.PEP, trend="c", maxlag=maxlag, autolag="aic")
        np.testing.assert_allclose((ours.stat, ours.pvalue), ref[:2], rtol=0, atol=1e-8)
    ours = engle_granger(window.KO, window.PEP, autolag="t-stat")
    np.testing.assert_allclose(
        (ours.stat, ours.pvalue), coint(window.KO, window.PEP, trend="c", autolag="t-stat")[:2], atol=1e-8
    )


@pytest.mark.parametrize("autolag", ["aic", "bic", "t-stat", None])
def test_engle_granger_result_carries_the_lags_adfuller_chooses(autolag):
    """The result's lag order is the one statsmodels' adfuller picks on coint's residuals."""
    from statsmodels.regression.linear_model import OLS
    from statsmodels.tsa.stattools import adfuller

    for window, y_sym, x_sym in list(real_cases())[:3]:
        result = engle_granger(window[y_sym], window[x_sym], autolag=autolag)
        fit = OLS(window[y_sym].to_numpy(), np.column_stack([window[x_sym].to_numpy(), np.ones(len(window))])).fit()
        maxlag = result.max_lags
        _stat, _p, used_lag, nobs, *_ = adfuller(
            fit.resid, maxlag=maxlag, autolag=autolag, regression="n", result_object=False
        )
        assert result.lags == used_lag and result.nobs == len(window)
        assert (result.hedge_ratio, result.intercept) == pytest.approx(tuple(fit.params), rel=1e-9)
        assert str(result).startswith("Engle-Granger cointegration test (trend 'c'")


def test_batch_equals_single_calls():
    window = real_log_prices().iloc[-250:]
    pairs = list(itertools.permutations(SYMBOLS, 2))
    stats, pvalues = engle_granger_many(
        window[[y for y, _ in pairs]].to_numpy(), window[[x for _, x in pairs]].to_numpy()
    )
    for (y_sym, x_sym), stat, pvalue in zip(pairs, stats, pvalues):
        single = engle_granger(window[y_sym], window[x_sym])
        assert (stat, pvalue) == pytest.approx((single.stat, single.pvalue), abs=1e-12)


def test_vectorised_mackinnon_pvalues_equal_statsmodels():
    grid = np.concatenate([np.linspace(-25.0, 3.0, 2801), [-np.inf, -18.86, -2.62, 0.92]])
    expected = [mackinnonp(stat, regression="c", N=2) for stat in grid]
    np.testing.assert_allclose(_mackinnon_pvalues(grid), expected, rtol=0, atol=1e-15)


def test_collinear_pair_is_reported_like_coint():
    x = real_log_prices().KO.to_numpy()[-100:]
    y = 0.5 + 2.0 * x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = coint(y, x, trend="c")
    result = engle_granger(y, x)
    assert (result.stat, result.pvalue) == (reference[0], reference[1]) == (-np.inf, 0.0)
    assert result.lags is None


def test_engle_granger_bad_inputs_name_the_field():
    x = np.linspace(1.0, 2.0, 100)
    with pytest.raises(ValueError, match="y contains NaN"):
        engle_granger(np.r_[np.nan, x[1:]], x)
    with pytest.raises(UnusableSeriesError, match="x is constant"):
        engle_granger(x, np.ones(100))
    with pytest.raises(ValueError, match="same length"):
        engle_granger(x, x[:-1])
    with pytest.raises(InsufficientHistoryError, match="observations"):
        engle_granger(x[:20], x[:20] ** 2)
    with pytest.raises(ValueError, match="autolag"):
        engle_granger(x, x**2, autolag="hqic")


def test_hedge_ratio_matches_statsmodels_ols():
    window = real_log_prices().iloc[-250:]
    beta, intercept = hedge_ratio(window.KO, window.PEP)
    reference = sm.OLS(window.KO.to_numpy(), sm.add_constant(window.PEP.to_numpy())).fit().params
    np.testing.assert_allclose([intercept, beta], reference, rtol=1e-10)


def johansen_trace(y, x, det_order: int = 0, k_ar_diff: int = 1) -> float:
    """The reference: statsmodels' r = 0 trace statistic of the system [y, x]."""
    return coint_johansen(np.column_stack([np.asarray(y, float), np.asarray(x, float)]), det_order, k_ar_diff).lr1[0]


def test_johansen_trace_of_one_system_matches_statsmodels():
    window = real_log_prices().iloc[-250:]
    for det_order, k_ar_diff in ((0, 1), (1, 2), (-1, 0)):
        ours = johansen_trace_many(window.XOM.to_numpy(), window.CVX.to_numpy(), det_order, k_ar_diff)[0]
        assert ours == pytest.approx(johansen_trace(window.XOM, window.CVX, det_order, k_ar_diff), rel=1e-8)
    # the trace statistic does not depend on which series is listed first
    assert johansen_trace_many(window.XOM.to_numpy(), window.CVX.to_numpy())[0] == pytest.approx(
        johansen_trace_many(window.CVX.to_numpy(), window.XOM.to_numpy())[0], rel=1e-9
    )


def test_half_life_recovers_planted_ar1():
    rng = np.random.default_rng(7)
    phi = 0.9  # lambda = -0.1
    spread = np.zeros(20_000)
    for t in range(1, spread.size):
        spread[t] = phi * spread[t - 1] + rng.standard_normal()
    expected = -math.log(2.0) / math.log(phi)  # 6.58 sessions
    assert half_life(spread + 3.0) == pytest.approx(expected, rel=0.05)


def test_half_life_is_infinite_without_mean_reversion():
    explosive = 1.01 ** np.arange(200) + np.random.default_rng(1).normal(0, 0.01, 200)
    assert half_life(explosive) == math.inf
    with pytest.raises(UnusableSeriesError, match="spread is constant"):
        half_life(np.ones(10))
    with pytest.raises(ValueError, match="spread contains NaN"):
        half_life(np.array([1.0, np.nan, 2.0, 1.0]))


@settings(max_examples=60, deadline=None)
@given(
    pvalues=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    alpha=st.sampled_from([0.01, 0.05, 0.1, 0.25]),
)
def test_benjamini_hochberg_matches_multipletests(pvalues, alpha):
    expected = multipletests(np.array(pvalues), alpha=alpha, method="fdr_bh")[0]
    np.testing.assert_array_equal(benjamini_hochberg(pvalues, alpha), expected)


def test_benjamini_hochberg_edges():
    assert benjamini_hochberg([], 0.05).shape == (0,)
    with pytest.raises(ValueError, match="fdr_alpha"):
        benjamini_hochberg([0.01], 1.5)
    with pytest.raises(ValueError, match="NaN"):
        benjamini_hochberg([np.nan, 0.01], 0.05)


def screen(log_prices, correlation_min=-1.0, **kwargs):
    correlations = correlation_long(np.exp(log_prices))
    return find_cointegrated_pairs(log_prices, correlations, correlation_min, kwargs.pop("pvalue_max", 0.05), **kwargs)


def test_planted_pairs_are_found():
    closes, planted = synthetic_panel(n_cointegrated_pairs=5, n_random_walks=0, n_obs=500, seed=11)
    result = screen(np.log(closes))
    found = {(row.y, row.x) for row in result.pairs.itertuples()} | {
        (row.x, row.y) for row in result.pairs.itertuples()
    }
    assert sum(pair in found for pair in planted) >= 4


def test_independent_random_walks_are_rejected_at_about_the_nominal_rate():
    # 200 disjoint pairs of independent GARCH random walks, 500 sessions, alpha = 0.05.
    # Measured false-positive rates, seeds 0-4: 0.015, 0.025, 0.025, 0.020, 0.010 with
    # require_both_orderings=True; 0.100, 0.130, 0.150, 0.110, 0.105 with it False (taking the
    # better of two orderings roughly doubles the size of the test).
    closes, _ = synthetic_panel(n_cointegrated_pairs=0, n_random_walks=400, n_obs=500, seed=0)
    names = list(closes.columns)
    disjoint = set(zip(names[0::2], names[1::2]))
    correlations = correlation_long(closes)
    correlations = correlations[[pair in disjoint for pair in zip(correlations.symbol_a, correlations.symbol_b)]]
    assert len(correlations) == 200
    result = find_cointegrated_pairs(np.log(closes), correlations, -1.0, 0.05, require_both_orderings=True)
    rate = len(result.pairs) / 200
    assert 0.0 <= rate <= 0.1
    assert len(result.pairs) + len(result.rejected) == 200


def test_output_contract_and_consistency_on_real_data():
    window = real_log_prices().loc[:"2022-12-28"].iloc[-250:]
    result = screen(window, correlation_min=0.5, pvalue_max=0.2, require_both_orderings=False)
    pairs, rejected = result.pairs, result.rejected
    assert list(pairs.columns) == PAIRS_COLUMNS and list(rejected.columns) == REJECTED_COLUMNS
    assert len(pairs) > 0 and len(rejected) > 0
    assert pairs.equals(pairs.sort_values(["eg_pvalue", "pair_id"], kind="mergesort").reset_index(drop=True))
    for row in pairs.itertuples():
        assert row.pair_id == f"{row.y}-{row.x}"
        stat, pvalue, _ = coint(window[row.y], window[row.x], trend="c", autolag="aic")
        assert row.eg_stat == pytest.approx(stat, abs=1e-8) and row.eg_pvalue == pytest.approx(pvalue, abs=1e-8)
        assert row.eg_pvalue <= row.eg_pvalue_reverse < 1.0
        assert row.eg_pvalue_reverse == pytest.approx(coint(window[row.x], window[row.y], trend="c")[1], abs=1e-8)
        assert (row.hedge_ratio, row.intercept) == pytest.approx(hedge_ratio(window[row.y], window[row.x]))
        assert row.johansen_trace == pytest.approx(johansen_trace(window[row.y], window[row.x]))
        assert row.n_obs == 250
        assert row.window_start == window.index[0] and row.window_end == pd.Timestamp("2022-12-28")
    assert (rejected.eg_pvalue >= 0.2).all() and rejected.reason.str.startswith("eg_pvalue").all()


def test_both_orderings_and_fdr_only_remove_pairs():
    window = real_log_prices().iloc[-250:]
    loose = screen(window, pvalue_max=0.1, require_both_orderings=False)
    strict = screen(window, pvalue_max=0.1, require_both_orderings=True)
    fdr = screen(window, pvalue_max=0.1, require_both_orderings=False, fdr_alpha=0.1)
    assert set(strict.pairs.pair_id) <= set(loose.pairs.pair_id)
    assert set(fdr.pairs.pair_id) <= set(loose.pairs.pair_id)
    reverse = strict.rejected[strict.rejected.reason.str.startswith("reverse ordering")]
    assert (reverse.eg_pvalue < 0.1).all() and (reverse.eg_pvalue_reverse >= 0.1).all()
    assert len(strict.pairs) + len(strict.rejected) == len(loose.pairs) + len(loose.rejected) == 190


def test_empty_inputs_give_typed_empty_frames():
    window = real_log_prices().iloc[-60:, :1]
    result = find_cointegrated_pairs(window, correlation_long(np.exp(window)), 0.8, 0.05)
    assert list(result.pairs.columns) == PAIRS_COLUMNS and result.pairs.empty
    assert list(result.rejected.columns) == REJECTED_COLUMNS and result.rejected.empty
    assert result.pairs.n_obs.dtype == np.int64 and result.pairs.window_start.dtype == window.index.dtype


def test_bad_inputs_name_the_symbol_or_field():
    window = real_log_prices().iloc[-60:, :3].copy()
    correlations = correlation_long(np.exp(window))
    with pytest.raises(ValueError, match="not in log_prices: \\['AMD'\\]"):
        find_cointegrated_pairs(window.drop(columns="AMD"), correlations, -1.0, 0.05)
    window.iloc[5, 1] = np.nan
    with pytest.raises(UnusableSeriesError, match="AMD"):
        find_cointegrated_pairs(window, correlations, -1.0, 0.05)
    with pytest.raises(ValueError, match="pvalue_max"):
        find_cointegrated_pairs(window, correlations, 0.8, 0.0)
    with pytest.raises(ValueError, match="correlations is missing column"):
        find_cointegrated_pairs(window, correlations.drop(columns="correlation"), 0.8, 0.05)


# --- scale: blocks of orderings, batched Johansen, the sampled statsmodels gate ------------------
def random_walks(n_symbols: int, n_obs: int = 60, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2021-01-04", periods=n_obs)
    steps = rng.normal(0.0, 0.01, (n_obs, n_symbols))
    return pd.DataFrame(4.0 + np.cumsum(steps, axis=0), index=index, columns=[f"S{i:03d}" for i in range(n_symbols)])


def test_blocks_of_orderings_do_not_change_the_statistics(monkeypatch):
    import pairs_assets.quant.cointegration as cointegration

    prices = real_log_prices().iloc[-250:]
    pairs = list(itertools.permutations(prices.columns, 2))
    y = prices[[a for a, _ in pairs]].to_numpy()
    x = prices[[b for _, b in pairs]].to_numpy()
    whole = engle_granger_many(y, x)
    monkeypatch.setattr(cointegration, "_BLOCK_ELEMENTS", 7 * 250 * 20)  # blocks of a few orderings
    assert cointegration._block_size(250, cointegration._default_maxlag(250)) < 10
    blocked = engle_granger_many(y, x)
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_array_equal(blocked[1], whole[1])
    for j in range(0, len(pairs), 37):
        stat, pvalue, _ = coint(y[:, j], x[:, j], trend="c", autolag="aic")
        assert blocked[0][j] == pytest.approx(stat, abs=1e-8)
        assert blocked[1][j] == pytest.approx(pvalue, abs=1e-8)


@pytest.mark.parametrize("det_order,k_ar_diff", [(0, 1), (-1, 1), (1, 2), (0, 0), (0, 3)])
def test_batched_johansen_matches_statsmodels(det_order, k_ar_diff):
    from pairs_assets.quant.cointegration import johansen_trace_many

    prices = real_log_prices().iloc[-250:]
    pairs = list(itertools.combinations(SYMBOLS, 2))
    y = prices[[a for a, _ in pairs]].to_numpy()
    x = prices[[b for _, b in pairs]].to_numpy()
    ours = johansen_trace_many(y, x, det_order, k_ar_diff)
    reference = [
        coint_johansen(np.column_stack([y[:, j], x[:, j]]), det_order, k_ar_diff).lr1[0] for j in range(len(pairs))
    ]
    np.testing.assert_allclose(ours, reference, rtol=1e-8)
    with pytest.raises(ValueError, match="det_order"):
        johansen_trace_many(y, x, 2)
    with pytest.raises(InsufficientHistoryError):
        johansen_trace_many(y[:4], x[:4], 0, 1)


def test_every_pair_a_candidate_screen_equals_statsmodels_on_a_sample():
    log_prices = random_walks(150)
    correlations = correlation_long(np.exp(log_prices))
    result = find_cointegrated_pairs(log_prices, correlations, correlation_min=-1.0, pvalue_max=0.05)
    assert len(result.pairs) + len(result.rejected) == 150 * 149 // 2
    assert len(result.pairs) > 200  # enough for the gate to sample (EG_RETEST_MAX)
    for row in result.pairs.iloc[::25].itertuples():
        y, x = log_prices[row.y].to_numpy(), log_prices[row.x].to_numpy()
        assert row.eg_pvalue == pytest.approx(coint(y, x, trend="c", autolag="aic")[1], abs=1e-8)
        assert row.eg_pvalue_reverse == pytest.approx(coint(x, y, trend="c", autolag="aic")[1], abs=1e-8)
        assert row.johansen_trace == pytest.approx(johansen_trace(y, x), rel=1e-8)


@lru_cache(maxsize=1)
def many_passing_pairs():
    log_prices = random_walks(150)
    correlations = correlation_long(np.exp(log_prices))
    return log_prices, find_cointegrated_pairs(log_prices, correlations, correlation_min=-1.0, pvalue_max=0.05).pairs


def test_gate_retest_selection_is_bounded_deterministic_and_keeps_the_borderline_pairs():
    from pairs_assets.checks import EG_RETEST_MAX, eg_retest_selection

    _, pairs = many_passing_pairs()
    chosen, how = eg_retest_selection(pairs)
    assert len(chosen) == EG_RETEST_MAX and chosen["pair_id"].is_unique
    borderline = pairs.nlargest(EG_RETEST_MAX // 2, "eg_pvalue")["pair_id"]
    assert set(borderline) <= set(chosen["pair_id"])
    assert f"of {len(pairs)} pairs" in how
    shuffled, _ = eg_retest_selection(pairs.sample(frac=1.0, random_state=3))
    assert set(shuffled["pair_id"]) == set(chosen["pair_id"])
    few, how_few = eg_retest_selection(pairs.iloc[:30])
    assert len(few) == 30 and how_few == "all 30 pairs"


def test_gate_blocks_a_bad_stored_pvalue_whether_or_not_it_is_retested():
    from pairs_assets.checks import cointegrated_pairs_results, eg_retest_selection
    from pairs_assets.settings import StrategySettings

    log_prices, pairs = many_passing_pairs()
    strategy = StrategySettings(correlation_min=-1.0)
    results = {r.check_name: r for r in cointegrated_pairs_results(pairs, log_prices, strategy)}
    gate = results["eg_pvalue_below_max"]
    assert gate.passed and gate.metadata["retested_with_statsmodels"].value == 200
    assert gate.metadata["max_abs_diff_vs_statsmodels"].value < 1e-8

    chosen, _ = eg_retest_selection(pairs)
    not_retested = pairs.loc[~pairs["pair_id"].isin(chosen["pair_id"])].index[0]
    tampered = pairs.copy()
    tampered.loc[not_retested, "eg_pvalue"] = 0.07  # above eg_pvalue_max: caught without statsmodels
    gate = {r.check_name: r for r in cointegrated_pairs_results(tampered, log_prices, strategy)}["eg_pvalue_below_max"]
    assert not gate.passed and pairs.loc[not_retested, "pair_id"] in gate.metadata["violations"].text

    tampered = pairs.copy()
    # a pair far from the threshold, re-tested because it was sampled
    sampled = chosen.loc[chosen["eg_pvalue"] < chosen["eg_pvalue"].nlargest(100).min()].index[0]
    tampered.loc[sampled, "eg_pvalue"] += 1e-4  # a screen that disagrees with statsmodels
    gate = {r.check_name: r for r in cointegrated_pairs_results(tampered, log_prices, strategy)}["eg_pvalue_below_max"]
    assert not gate.passed and pairs.loc[sampled, "pair_id"] in gate.metadata["violations"].text
