"""Signal and sizing math (pairs_assets.quant.signals): known answers, the arch library, invariants."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from pairs_assets.quant import rule
from pairs_assets.quant import signals as sig
from pairs_assets.quant.config_model import Levels as ConfigLevels
from pairs_assets.quant.config_model import PairConfig, RiskBlock
from pairs_assets.quant.features import FEATURE_NAMES
from pairs_assets_tests import trading_configs as configs

LEVELS = sig.Levels(entry_z=2.0, exit_z=0.5, stop_z=3.5)
GARCH = sig.GarchParams(mu=0.0, omega=1e-6, alpha=0.05, beta=0.9, sigma_forecast=0.01, unconditional_sigma=None)


def config_pair(*, spread_std: float = 0.02, gated: bool = True, **overrides) -> PairConfig:
    """KO-PEP as a trading config holds it (through the typed model); ``overrides`` replace fields."""
    garch = configs.garch_block(
        mu=0.0, omega=1e-6, alpha=0.05, beta=0.9, sigma_forecast=0.01, unconditional_sigma=0.011
    )
    model = (
        configs.model_block("pairs_trading_gru_garch_consumer", "3", garch=garch, probability_threshold=0.55)
        if gated
        else None
    )
    pair = configs.pair_config(
        "KO",
        "PEP",
        hedge_ratio=0.9,
        intercept=0.1,
        spread_mean=0.0,
        spread_std=spread_std,
        garch=garch,
        model=model,
        correlation=0.85,
        half_life=8.0,
        levels=ConfigLevels(entry_z=2.0, exit_z=0.5, stop_z=3.5),
    )
    return pair.model_copy(update=overrides)


def test_spread_is_log_y_minus_beta_log_x_minus_intercept():
    assert sig.spread(math.e**2, math.e, 0.5, 0.25) == pytest.approx(2 - 0.5 - 0.25)
    np.testing.assert_allclose(sig.spread(np.array([10.0, 20.0]), np.array([5.0, 5.0]), 1.0), np.log([2.0, 4.0]))


def test_garch_filter_fixed_matches_arch_with_fixed_parameters():
    from arch import arch_model

    rng = np.random.default_rng(0)
    mu, omega, alpha, beta = 0.02, 0.05, 0.08, 0.9  # percent units, as arch prefers
    n, h, r = 1500, omega / (1 - alpha - beta), []
    for _ in range(n):
        e = math.sqrt(h) * rng.standard_normal()
        r.append(mu + e)
        h = omega + alpha * e * e + beta * h
    params = sig.GarchParams(mu=mu, omega=omega, alpha=alpha, beta=beta, sigma_forecast=1.0)
    sigma, resid = sig.garch_filter_fixed(np.array(r), params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed = arch_model(np.array(r), mean="Constant", vol="GARCH", p=1, q=1).fix([mu, omega, alpha, beta])
    # the start-up differs (arch backcasts h_1); its effect decays like beta^t
    np.testing.assert_allclose(sigma[300:], fixed.conditional_volatility[300:], rtol=1e-6)
    np.testing.assert_allclose(resid[300:], fixed.std_resid[300:], rtol=1e-6)
    assert sigma[0] == pytest.approx(math.sqrt(omega / (1 - alpha - beta)))


def test_garch_filter_fixed_handles_gaps_and_non_stationary_fits():
    sigma, resid = sig.garch_filter_fixed(np.array([0.01, np.nan, -0.02]), GARCH)
    assert np.isfinite(sigma).all() and math.isnan(resid[1]) and np.isfinite(resid[[0, 2]]).all()
    explosive = sig.GarchParams(mu=0, omega=1e-6, alpha=0.3, beta=0.8, sigma_forecast=0.01)
    assert math.isnan(explosive.sigma_infinity)
    assert np.isfinite(sig.garch_filter_fixed(np.array([0.01, -0.01, 0.02]), explosive)[0]).all()


def test_zscore_rescales_the_spread_std_by_the_garch_regime():
    calm = sig.GarchParams(mu=0, omega=1e-6, alpha=0.05, beta=0.9, sigma_forecast=0.002, unconditional_sigma=0.004)
    z, level, scaled = sig.garch_zscore(0.03, 0.01, 0.02, calm)
    assert scaled and level == pytest.approx(0.01) and z == pytest.approx(2.0)
    # sigma_inf from omega / (1 - alpha - beta) when the config gives none
    implied = sig.GarchParams(mu=0, omega=2e-6, alpha=0.05, beta=0.85, sigma_forecast=math.sqrt(2e-5))
    assert implied.sigma_infinity == pytest.approx(math.sqrt(2e-5))
    assert sig.garch_zscore(0.04, 0.0, 0.02, implied)[0] == pytest.approx(2.0)
    explosive = sig.GarchParams(mu=0, omega=1e-6, alpha=0.3, beta=0.8, sigma_forecast=0.05)
    z, level, scaled = sig.garch_zscore(0.04, 0.0, 0.02, explosive)
    assert not scaled and level == 0.02 and z == pytest.approx(2.0)


@dataclass(frozen=True)
class _Terms:
    pair_id: str = "KO-PEP"
    y: str = "KO"
    x: str = "PEP"
    hedge_ratio: float = 0.9
    levels: sig.Levels = LEVELS


@pytest.mark.parametrize(
    ("z", "p", "side", "action", "confidence", "flag"),
    [
        (4.0, 0.9, -1, sig.STOP, 1.0, None),
        (-3.5, None, 1, sig.STOP, 1.0, None),
        (4.0, 0.9, 0, sig.HOLD, 0.5, None),  # flat beyond the stop: no entry, nothing to stop
        (2.5, 0.8, 0, sig.SHORT_SPREAD, 0.8, None),
        (-2.5, 0.6, 0, sig.LONG_SPREAD, 0.6, None),
        (2.5, 0.3, 0, sig.HOLD, 0.7, "gru_veto"),
        (-2.0, None, 0, sig.LONG_SPREAD, 0.5, "no_gru_gating"),
        (2.5, 0.9, -1, sig.HOLD, 0.5, None),  # held: no second entry
        (0.0, 0.9, -1, sig.EXIT, 1.0, None),
        (0.25, None, -1, sig.EXIT, 0.75, None),
        (-1.0, None, -1, sig.EXIT, 1.0, None),  # a short exits across the mean
        (0.1, None, 0, sig.HOLD, 0.5, None),  # flat near the mean: nothing to exit
        (1.25, None, 0, sig.HOLD, 1.0, None),
        (1.9, None, 0, sig.HOLD, 0.5 + 0.5 * 0.1 / 0.75, None),
        (float("nan"), None, 0, sig.HOLD, 0.0, "no_zscore"),
    ],
)
def test_decision_table(z, p, side, action, confidence, flag):
    """The trading rule's action on a pair's state and the signal's confidence (quant.rule, sig.confidence)."""
    state = rule.PairState("KO-PEP", "KO", "PEP", side=side, entry_ordinal=0 if side else -1, terms=_Terms())
    obs = rule.Observation(
        1, "s1", 1, z, _Terms(), sizing={"y_fraction": 0.1, "x_fraction": 0.09}, probability=p, threshold=0.55
    )
    after, done = rule.step(state, obs)
    got = rule.step_action(done, after)
    conf, flags = sig.confidence(got, z, LEVELS, p, vetoed=done.vetoed)
    assert got == action
    assert conf == pytest.approx(confidence)
    assert (flag in flags) if flag else not flags


def test_levels_must_be_ordered():
    with pytest.raises(sig.SignalInputError, match="exit_z < entry_z < stop_z"):
        sig.Levels(entry_z=2.0, exit_z=2.5, stop_z=3.0)


def test_target_positions_are_signed_by_direction_and_hedge_sign():
    sizing = {"y_fraction": 0.08, "x_fraction": 0.072}
    assert sig.target_position(sig.LONG_SPREAD, 0.9, sizing) == (0.08, -0.072)
    assert sig.target_position(sig.SHORT_SPREAD, 0.9, sizing) == (-0.08, 0.072)
    assert sig.target_position(sig.LONG_SPREAD, -0.9, sizing) == (0.08, 0.072)  # negative hedge: both long
    assert sig.target_position(sig.EXIT, 0.9, sizing) == (0.0, 0.0)
    assert sig.target_position(sig.STOP, 0.9, sizing) == (0.0, 0.0)
    assert sig.target_position(sig.HOLD, 0.9, sizing) == (None, None)


def test_risk_limits_take_the_tighter_of_strategy_and_config():
    block = RiskBlock(max_portfolio_risk=0.03, max_position=0.2, target_daily_vol=0.0)  # 0: not a limit, ignored
    assert sig.RiskLimits(0.05, 0.10, 0.01).tighter(block) == sig.RiskLimits(0.03, 0.10, 0.01)
    assert sig.RiskLimits().tighter(None) == sig.RiskLimits()


def test_correlation_drift():
    rng = np.random.default_rng(1)
    common = np.cumsum(rng.normal(0, 0.01, 61))
    y = np.exp(4 + common + np.cumsum(rng.normal(0, 0.002, 61)))
    x = np.exp(3 + common + np.cumsum(rng.normal(0, 0.002, 61)))
    recent, drifted = sig.correlation_drift(y, x, reference=0.9, window=20, tolerance=0.2)
    assert recent > 0.8 and drifted is False
    unrelated = np.exp(3 + np.cumsum(rng.normal(0, 0.01, 61)))
    recent, drifted = sig.correlation_drift(y, unrelated, reference=0.9, window=20, tolerance=0.2)
    assert recent < 0.7 and drifted is True
    assert sig.correlation_drift(y[:5], x[:5], 0.9, window=20)[1] is None
    assert sig.correlation_drift(y, np.full(61, 7.0), 0.9, window=20) == (pytest.approx(math.nan, nan_ok=True), None)


def test_correlation_drift_equals_numpy_corrcoef_on_the_last_window():
    """The centred-sums Pearson r of the last ``window`` returns is np.corrcoef's (the reference it replaced),
    with missing closes dropped as before; a gap inside the window shortens it."""
    rng = np.random.default_rng(7)
    for trial in range(200):
        n, window = int(rng.integers(8, 130)), int(rng.integers(5, 40))
        y = np.exp(4 + np.cumsum(rng.normal(0, 0.01, n)))
        x = np.exp(3 + 0.5 * np.log(y) + np.cumsum(rng.normal(0, 0.01, n)))
        if trial % 5 == 0:
            y[rng.integers(0, n)] = np.nan
        ry, rx = np.diff(np.log(y))[-window:], np.diff(np.log(x))[-window:]
        ok = np.isfinite(ry) & np.isfinite(rx)
        recent, drifted = sig.correlation_drift(y, x, reference=0.5, window=window, tolerance=0.2)
        if ok.sum() < max(3, window // 2):
            assert drifted is None and math.isnan(recent)
            continue
        expected = float(np.corrcoef(ry[ok], rx[ok])[0, 1])
        assert recent == pytest.approx(expected, abs=1e-12) and drifted is (expected < 0.3)


def test_pair_params_from_a_typed_pair_config():
    pair = config_pair()
    params = sig.PairParams.from_pair_config(pair)
    assert (params.model_name, params.model_version, params.probability_threshold) == (
        "pairs_trading_gru_garch_consumer",
        "3",
        0.55,
    )
    assert params.model_beats_baselines is True
    assert (params.hedge_ratio, params.intercept, params.spread_mean, params.spread_std) == (0.9, 0.1, 0.0, 0.02)
    assert params.levels == sig.Levels(2.0, 0.5, 3.5) and params.half_life == 8.0 and params.correlation == 0.85
    assert params.garch == sig.GarchParams(
        mu=0.0, omega=1e-6, alpha=0.05, beta=0.9, sigma_forecast=0.01, unconditional_sigma=0.011
    )
    assert params.garch.sigma_infinity == 0.011
    assert (params.feature_garch.omega, params.feature_garch.alpha, params.feature_garch.beta) == (1e-6, 0.05, 0.9)
    ungated = sig.PairParams.from_pair_config(config_pair(gated=False, correlation=None, half_life=None))
    assert ungated.model_name is None and ungated.model_version is None and ungated.feature_garch is None
    assert ungated.probability_threshold == sig.DEFAULT_PROBABILITY_THRESHOLD and ungated.model_beats_baselines is None
    assert math.isnan(ungated.correlation) and ungated.half_life is None
    # a null threshold: the default; a null GARCH mean: 0; a null σ_∞: derived from ω, α, β
    loose = config_pair(
        garch=pair.garch.model_copy(update={"mu": None, "unconditional_sigma": None}),
        model=pair.model.model_copy(update={"probability_threshold": None}),
    )
    params = sig.PairParams.from_pair_config(loose)
    assert params.probability_threshold == sig.DEFAULT_PROBABILITY_THRESHOLD and params.garch.mu == 0.0
    assert params.garch.sigma_infinity == pytest.approx(math.sqrt(1e-6 / 0.05))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"spread_std": 0.0}, "pair KO-PEP: spread_std=0.0 must be positive"),
        ({"spread_std": -0.01}, "pair KO-PEP: spread_std=-0.01 must be positive"),
        ({"garch.omega": None}, "pair KO-PEP: trading config lacks garch.omega (null)"),
        ({"garch.sigma_forecast": None}, "pair KO-PEP: trading config lacks garch.sigma_forecast (null)"),
        ({"model.feature_garch.beta": None}, "pair KO-PEP: trading config lacks model.feature_garch.beta (null)"),
        ({"levels.exit_z": 2.5}, "pair KO-PEP: levels need 0 <= exit_z < entry_z < stop_z, got 2.5, 2.0, 3.5"),
        # only a config built without validation can hold these; the checks still name the field
        ({"hedge_ratio": float("nan")}, "pair KO-PEP: hedge_ratio=nan is not finite"),
        ({"spread_mean": None}, "pair KO-PEP: trading config lacks spread_mean (null)"),
    ],
)
def test_pair_params_refuse_what_a_signal_cannot_use_naming_pair_and_field(change, message):
    pair = config_pair()
    ((path, value),) = change.items()
    *blocks, name = path.split(".")
    chain = [pair]
    for block in blocks:
        chain.append(getattr(chain[-1], block))
    updated = chain[-1].model_construct(**{**chain[-1].__dict__, name: value})
    for parent, block in zip(reversed(chain[:-1]), reversed(blocks)):
        updated = parent.model_construct(**{**parent.__dict__, block: updated})
    with pytest.raises(sig.SignalInputError) as raised:
        sig.PairParams.from_pair_config(updated)
    assert str(raised.value) == message


def test_the_typed_model_refuses_non_finite_numbers_before_the_signal_sees_them():
    with pytest.raises(ValidationError, match="hedge_ratio"):
        PairConfig.model_validate({**config_pair().model_dump(), "hedge_ratio": float("inf")})


def _pair_input(z_target: float, n: int = 80, **pair_overrides) -> sig.PairInput:
    """History with spread ≈ 0 and a latest y price that puts the spread at ``z_target``."""
    params = sig.PairParams.from_pair_config(config_pair(**pair_overrides))
    rng = np.random.default_rng(5)
    x = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    y = np.exp(params.hedge_ratio * np.log(x) + params.intercept + rng.normal(0, 0.005, n))
    history = pd.DataFrame({"y": y, "x": x}, index=pd.bdate_range("2022-08-01", periods=n))
    _, level, _ = sig.garch_zscore(0.0, 0.0, params.spread_std, params.garch)
    latest_x = float(x[-1])
    latest_y = math.exp(
        params.hedge_ratio * math.log(latest_x) + params.intercept + params.spread_mean + z_target * level
    )
    return sig.PairInput(params, history, latest_y, latest_x, pd.Timestamp("2022-12-29T15:00Z"))


def _later(state: rule.PairState) -> rule.PairState:
    """The state as if its last bar were an hour before the test bar."""
    from dataclasses import replace

    return replace(state, last_bar=pd.Timestamp("2022-12-29T14:00Z"), entry_bar=pd.Timestamp("2022-12-29T14:00Z"))


def test_compute_pair_signal_entry_size_and_caps():
    pair = _pair_input(2.6)
    limits = sig.RiskLimits(max_portfolio_risk=0.05, max_position=0.10, target_daily_vol=0.01)
    signal = sig.compute_pair_signal(pair, 0.7, limits, n_pairs=2)
    assert signal.zscore == pytest.approx(2.6) and signal.action == sig.SHORT_SPREAD and signal.confidence == 0.7
    # v = min(0.01, 0.05 / 2) = 0.01; f_y = v / sigma = 1.0 → capped at max_position 0.10 (y is the larger leg)
    assert signal.position_y == pytest.approx(-0.10) and signal.position_x == pytest.approx(0.09)
    assert signal.gross_fraction == pytest.approx(0.19)
    wide = sig.compute_pair_signal(pair, 0.7, sig.RiskLimits(0.05, 10.0, 0.01), n_pairs=10)
    # v = min(0.01, 0.05 / 10) = 0.005 → f_y = 0.5: the portfolio budget binds, not the position cap
    assert wide.position_y == pytest.approx(-0.5)
    vetoed = sig.compute_pair_signal(pair, 0.2, limits, n_pairs=2)
    assert vetoed.action == sig.HOLD and vetoed.position_y is None and "gru_veto" in vetoed.flags
    ungated = sig.compute_pair_signal(pair, None, limits, n_pairs=2, gating_flags=("model_unavailable",))
    assert ungated.action == sig.SHORT_SPREAD and {"model_unavailable", "no_gru_gating"} <= set(ungated.flags)
    assert signal.state.side == -1 and signal.state.entry_z == pytest.approx(2.6)
    long_ = sig.compute_pair_signal(_pair_input(-2.6), 0.9, limits, 2).state
    assert sig.compute_pair_signal(_pair_input(-5.0), 0.9, limits, 2, state=_later(long_)).action == sig.STOP
    assert sig.compute_pair_signal(_pair_input(-5.0), 0.9, limits, 2).action == sig.HOLD  # flat: nothing to stop
    exit_ = sig.compute_pair_signal(_pair_input(0.1), 0.9, limits, 2, state=_later(signal.state))
    assert exit_.action == sig.EXIT and exit_.position_y == 0.0 and exit_.correlation_drift is False
    assert exit_.state.side == 0 and exit_.exit_reason == "exit"


def test_compute_pair_signal_rejects_bad_prices():
    pair = _pair_input(1.0)
    pair.latest_y = -1.0
    with pytest.raises(sig.SignalInputError, match="pair KO-PEP: price of KO is -1.0"):
        sig.compute_pair_signal(pair, None, sig.RiskLimits(), 1)


def test_gru_sequence_window_and_short_history():
    seq = sig.gru_sequence(_pair_input(1.0, n=60), seq_len=10)
    assert seq.shape == (10, len(FEATURE_NAMES)) and seq.dtype == np.float32 and np.isfinite(seq).all()
    with pytest.raises(sig.SignalInputError, match="pair KO-PEP: 15 sessions of spread give no complete GRU window"):
        sig.gru_sequence(_pair_input(1.0, n=15), seq_len=10)


def test_gru_sequence_is_the_daily_features_of_the_session_closes_whatever_the_intraday_price():
    """The model was trained on one row per session close: the intraday price is not a row."""
    from pairs_assets.quant.features import build_features

    calm, far = _pair_input(0.1), _pair_input(3.0)
    seq = sig.gru_sequence(calm, seq_len=10)
    np.testing.assert_array_equal(seq, sig.gru_sequence(far, seq_len=10))
    s = calm.session_spreads()
    assert s.index.equals(calm.history.index) and len(calm.spread_path()) == len(s) + 1
    sigma, resid = sig.garch_filter_fixed(s.diff().to_numpy(), calm.params.feature_garch or calm.params.garch)
    expected = build_features(s, pd.Series(sigma, index=s.index), pd.Series(resid, index=s.index)).tail(10)
    np.testing.assert_array_equal(seq, expected.to_numpy(dtype="float64").astype(np.float32))


def test_order_intents_move_the_pair_to_its_target():
    limits = sig.RiskLimits(0.05, 0.10, 0.01)
    entry = sig.compute_pair_signal(_pair_input(2.6), 0.9, limits, 2)
    intents = sig.order_intents(entry, 100_000, {})
    by_leg = {i.leg: i for i in intents}
    assert by_leg["y"].side == "sell" and by_leg["y"].qty == round(0.10 * 100_000 / entry.price_y)
    assert by_leg["x"].side == "buy" and by_leg["x"].symbol == "PEP"
    held = {"y": -by_leg["y"].qty, "x": by_leg["x"].qty}
    assert sig.order_intents(entry, 100_000, held) == []  # already positioned that way: no resizing
    exit_ = sig.compute_pair_signal(_pair_input(0.1), 0.9, limits, 2, state=_later(entry.state))
    closing = {i.leg: i for i in sig.order_intents(exit_, 100_000, held)}
    assert closing["y"].side == "buy" and closing["y"].qty == by_leg["y"].qty and closing["x"].side == "sell"
    assert sig.order_intents(exit_, 100_000, {}) == []  # flat already
    hold = sig.compute_pair_signal(_pair_input(1.2), 0.9, limits, 2)
    assert sig.order_intents(hold, 100_000, held) == []
