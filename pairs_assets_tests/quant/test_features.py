"""Features, labels, sequences, split and scaler of the GRU model: definitions, causality, no leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pairs_assets.quant.features import (
    FEATURE_NAMES,
    FEATURE_WARMUP,
    FeatureScaler,
    GRUTrainingError,
    InsufficientSequencesError,
    NaNFeaturesError,
    build_features,
    chronological_split,
    entry_event_labels,
    formation_statistics,
    make_labels,
    make_sequences,
    min_sessions_for,
    reversion_labels,
    rolling_zscore,
    trim_warmup,
    wilder_rsi,
)
from pairs_assets.settings import EMBEDDED_BARS_FILE


def _series(values, start="2020-01-01") -> pd.Series:
    return pd.Series(np.asarray(values, dtype="float64"), index=pd.bdate_range(start, periods=len(values)))


def _random_inputs(n: int = 300, seed: int = 0) -> tuple[pd.Series, pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    spread = _series(np.cumsum(rng.normal(size=n)) * 0.1)
    sigma = _series(1 + rng.random(n))
    resid = _series(rng.normal(size=n))
    sigma.iloc[0] = np.nan  # GARCH on returns: no value at the first session
    resid.iloc[0] = np.nan
    return spread, sigma, resid


@pytest.fixture(scope="module")
def ko_pep_spread() -> pd.Series:
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", "KO", "PEP"])
    logs = np.log(closes.iloc[-400:])
    slope, intercept = np.polyfit(logs["PEP"], logs["KO"], 1)
    return logs["KO"] - slope * logs["PEP"] - intercept


# --- features ------------------------------------------------------------------------------------


def test_feature_definitions_on_real_spread(ko_pep_spread):
    s = ko_pep_spread
    noise = pd.Series(np.linspace(1, 2, len(s)), index=s.index)
    f = build_features(s, noise, -noise)
    assert tuple(f.columns) == FEATURE_NAMES
    assert f.index.equals(s.index)
    t = 100
    window = s.iloc[t - 6 : t + 1]
    assert f["spread"].iloc[t] == s.iloc[t]
    for k in range(1, 6):
        assert f[f"lag_{k}"].iloc[t] == s.iloc[t - k]
    assert f["ma_5"].iloc[t] == pytest.approx(s.iloc[t - 4 : t + 1].mean())
    assert f["ma_20"].iloc[t] == pytest.approx(s.iloc[t - 19 : t + 1].mean())
    assert f["z_7"].iloc[t] == pytest.approx((s.iloc[t] - window.mean()) / window.std(ddof=1))
    assert f["vol_20"].iloc[t] == pytest.approx(np.std(np.diff(s.iloc[t - 20 : t + 1]), ddof=1))
    assert f["garch_sigma"].iloc[t] == noise.iloc[t]
    assert f["garch_std_resid"].iloc[t] == -noise.iloc[t]
    assert f.iloc[:FEATURE_WARMUP].isna().any(axis=1).all()
    assert f.iloc[FEATURE_WARMUP:].notna().all().all()
    assert f["rsi_14"].dropna().between(0, 100).all()


def test_wilder_rsi_known_answer():
    """Wilder's recursion by hand: seed with the first 14-change SMA-equivalent EWM, alpha = 1/14."""
    rng = np.random.default_rng(3)
    s = _series(np.cumsum(rng.normal(size=60)))
    delta = np.diff(s.to_numpy())
    gain, loss = np.clip(delta, 0, None), np.clip(-delta, 0, None)
    ag, al = gain[0], loss[0]
    for g, lo in zip(gain[1:], loss[1:]):
        ag, al = ag + (g - ag) / 14, al + (lo - al) / 14
    assert wilder_rsi(s).iloc[-1] == pytest.approx(100 - 100 / (1 + ag / al))
    assert wilder_rsi(_series(np.arange(40.0))).iloc[-1] == 100.0  # only up moves
    assert wilder_rsi(_series(np.ones(40))).iloc[-1] == 50.0  # flat


def test_z7_cannot_reach_large_levels():
    """Why the |z| > entry baseline uses a 20-session z: a 7-session z is bounded by 6/sqrt(7)."""
    s = _series([0.0] * 6 + [100.0])
    assert rolling_zscore(s, 7).iloc[-1] == pytest.approx(6 / np.sqrt(7))


@pytest.mark.parametrize("t", [25, 60, 150, 298])
def test_features_at_t_ignore_the_future(t):
    spread, sigma, resid = _random_inputs()
    before = build_features(spread, sigma, resid)
    rng = np.random.default_rng(t)
    changed = [x.copy() for x in (spread, sigma, resid)]
    for x in changed:
        x.iloc[t + 1 :] = rng.normal(size=len(x) - t - 1) * 50
    after = build_features(*changed)
    pd.testing.assert_frame_equal(before.iloc[: t + 1], after.iloc[: t + 1])


def test_garch_inputs_are_aligned_on_the_spread_sessions():
    spread, sigma, resid = _random_inputs(50)
    f = build_features(spread, sigma.iloc[::-1].sort_index().iloc[5:], resid)
    assert f["garch_sigma"].iloc[:5].isna().all()
    with pytest.raises(ValueError, match="spread: index must be unique and increasing"):
        build_features(spread.iloc[::-1], sigma, resid)


def test_trim_warmup_then_nan_in_the_middle_names_pair_and_column():
    spread, sigma, resid = _random_inputs()
    body = trim_warmup(build_features(spread, sigma, resid), "AAA-BBB")
    assert body.index[0] == spread.index[FEATURE_WARMUP]
    sigma.iloc[100] = np.nan
    with pytest.raises(NaNFeaturesError, match=r"pair AAA-BBB: feature\(s\) garch_sigma .*session 2020-05-20"):
        trim_warmup(build_features(spread, sigma, resid), "AAA-BBB")
    with pytest.raises(InsufficientSequencesError, match="pair AAA-BBB: no session has all"):
        trim_warmup(build_features(spread.iloc[:15], sigma.iloc[:15], resid.iloc[:15]), "AAA-BBB")


# --- labels --------------------------------------------------------------------------------------


def test_reversion_label_definition():
    # trailing mean over 3 sessions; horizon 2
    s = _series([0, 0, 0, 3, 2, 0.9, 5, 5, 5, 5])
    y = reversion_labels(s, horizon=2, mean_window=3)
    assert y.iloc[:2].isna().all()  # no mean yet
    assert y.iloc[-2:].isna().all()  # future unknown
    # t=2: m=0, d=0 → nothing to revert → 0
    assert y.iloc[2] == 0
    # t=3: m=1, d=2; halfway target: s - 1 <= 1 → s <= 2: s_4 = 2 → 1
    assert y.iloc[3] == 1
    # t=4: m=5/3, d=1/3; need s <= 5/3 + 1/6 = 1.83: s_5 = 0.9 → 1 (crossing the mean counts)
    assert y.iloc[4] == 1
    # t=5: m=1.3, d=-0.4 (below); need -(s - 1.3) <= 0.2 → s >= 1.1: s_6 = 5 → 1 (crosses up)
    assert y.iloc[5] == 1
    # t=6: m=2.633, d=2.367; need s <= 2.633 + 1.183 = 3.82: s_7 = s_8 = 5 → 0
    assert y.iloc[6] == 0
    assert y.iloc[7] == 0


def test_labels_only_look_horizon_sessions_ahead():
    spread, _, _ = _random_inputs()
    base = reversion_labels(spread, horizon=5)
    t = 150
    changed = spread.copy()
    changed.iloc[t + 6 :] += 100.0
    after = reversion_labels(changed, horizon=5)
    pd.testing.assert_series_equal(base.iloc[: t + 1], after.iloc[: t + 1])
    assert base.iloc[-5:].isna().all() and base.iloc[19:-5].notna().all()


@pytest.mark.parametrize("kwargs", [{"horizon": 0}, {"mean_window": 0}, {"reversion_fraction": 0.0}])
def test_label_parameters_are_checked(kwargs):
    with pytest.raises(ValueError):
        reversion_labels(_series(np.arange(30.0)), **kwargs)


# --- sequences -----------------------------------------------------------------------------------


def test_make_sequences_windows_and_labels():
    spread, sigma, resid = _random_inputs()
    features = trim_warmup(build_features(spread, sigma, resid))
    labels = reversion_labels(spread)
    X, y, ends = make_sequences(features, labels, seq_len=10)
    assert X.dtype == np.float32 and X.shape == (len(features) - 9 - 5, 10, len(FEATURE_NAMES))
    i = 37
    end = ends[i]
    np.testing.assert_array_equal(X[i], features.loc[:end].iloc[-10:].to_numpy(dtype=np.float32))
    assert y[i] == labels.loc[end]
    assert ends[-1] == spread.index[-6]  # the last labelled session: horizon 5 before the end
    assert (np.diff(spread.index.get_indexer(ends)) == 1).all()  # one per session


def test_min_sessions_for_gives_that_many_sequences():
    n_seq = 123
    spread, sigma, resid = _random_inputs(min_sessions_for(n_seq, seq_len=10, horizon=5, label_warmup=19))
    X, _, _ = make_sequences(trim_warmup(build_features(spread, sigma, resid)), reversion_labels(spread), 10)
    assert len(X) == n_seq
    assert min_sessions_for(1000, label_warmup=19) == 1034
    # the entry_event label needs a full formation window (252 by default) before its first row
    spread, sigma, resid = _random_inputs(min_sessions_for(n_seq, seq_len=10, horizon=5))
    X, _, _ = make_sequences(trim_warmup(build_features(spread, sigma, resid)), entry_event_labels(spread), 10)
    assert len(X) == n_seq
    assert min_sessions_for(1000) == 1256
    assert min_sessions_for(1000, label_warmup=59) == 1064  # the seed's 60-session formation


def test_make_sequences_bad_inputs():
    spread, sigma, resid = _random_inputs()
    features = trim_warmup(build_features(spread, sigma, resid))
    labels = reversion_labels(spread)
    with pytest.raises(InsufficientSequencesError, match="fewer than seq_len"):
        make_sequences(features.iloc[:5], labels, seq_len=10, pair_id="A-B")
    broken = features.copy()
    broken.iloc[50, broken.columns.get_loc("rsi_14")] = np.inf
    with pytest.raises(NaNFeaturesError, match=r"pair A-B: feature\(s\) rsi_14"):
        make_sequences(broken, labels, 10, pair_id="A-B")
    huge = features.copy()
    huge.iloc[50, 0] = 1e39
    with pytest.raises(NaNFeaturesError, match="overflow float32"):
        make_sequences(huge, labels, 10, pair_id="A-B")
    with pytest.raises(InsufficientSequencesError, match="no labelled sequence"):
        make_sequences(features.iloc[-12:], labels, 10, pair_id="A-B")
    assert issubclass(NaNFeaturesError, GRUTrainingError) and issubclass(GRUTrainingError, ValueError)


# --- split ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(20, 5000),
    val_frac=st.floats(0.05, 0.4),
    test_frac=st.floats(0.05, 0.4),
    purge=st.integers(0, 10),
)
def test_split_is_ordered_disjoint_and_purged(n, val_frac, test_frac, purge):
    try:
        split = chronological_split(n, val_frac, test_frac, purge)
    except InsufficientSequencesError:
        usable = n - 2 * purge
        n_val, n_test = round(usable * val_frac), round(usable * test_frac)
        assert min(usable - n_val - n_test, n_val, n_test) < 1
        return
    train, val, test = set(split.train), set(split.val), set(split.test)
    assert not (train & val or val & test or train & test)
    assert split.train.start == 0 and split.test.stop == n
    assert split.val.start - split.train.stop == purge
    assert split.test.start - split.val.stop == purge
    assert len(train) + len(val) + len(test) == n - 2 * purge
    assert min(len(train), len(val), len(test)) >= 1


def test_split_defaults_and_errors():
    split = chronological_split(1000, purge=5)
    assert split.as_dict() == {"n_train": 594, "n_val": 198, "n_test": 198, "purge": 5}
    with pytest.raises(InsufficientSequencesError, match="pair X-Y: 12 sequences"):
        chronological_split(12, purge=5, pair_id="X-Y")
    with pytest.raises(ValueError, match="val_frac"):
        chronological_split(100, 0.6, 0.5)


# --- scaler --------------------------------------------------------------------------------------


def test_scaler_fit_transform_roundtrip():
    spread, sigma, resid = _random_inputs()
    features = trim_warmup(build_features(spread, sigma, resid))
    train_rows = features.iloc[:150]
    scaler = FeatureScaler.fit(train_rows)
    scaled = scaler.transform(train_rows.to_numpy())
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-5)
    again = FeatureScaler.from_dict(scaler.to_dict())
    assert again.feature_names == FEATURE_NAMES
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.std, scaler.std)
    # fitted on the training rows only: later rows do not move it
    changed = features.copy()
    changed.iloc[150:] *= 1000
    np.testing.assert_array_equal(FeatureScaler.fit(changed.iloc[:150]).mean, scaler.mean)
    constant = FeatureScaler.fit(np.ones((10, 2)))
    np.testing.assert_array_equal(constant.std, [1.0, 1.0])
    np.testing.assert_array_equal(constant.transform(np.ones((3, 4, 2))), np.zeros((3, 4, 2)))


# --- the entry rule's event ------------------------------------------------------------------------


def _hand_spread() -> pd.Series:
    """60 formation sessions alternating ±1 (mean 0, sample std 60/59 ** 0.5), then a hand-made path."""
    formation = np.tile([1.0, -1.0], 30)
    return _series(np.concatenate([formation, [2.5, 1.8, 0.3, 4.0, 2.6, 2.4, 2.3, 2.2, 2.1, 2.0, 0.1]]))


def test_entry_event_label_is_the_entry_rules_exit_before_its_stop_on_the_configs_z():
    s = _hand_spread()
    sd = float(np.sqrt(60 / 59))
    stats = formation_statistics(s, 60)
    # the config as of session 59 holds the formation window's mean and sample σ (what the writer stores)
    assert stats["spread_mean"].iloc[59] == pytest.approx(float(s.iloc[:60].mean()), abs=1e-15)
    assert stats["spread_std"].iloc[59] == pytest.approx(float(s.iloc[:60].std(ddof=1)))
    labels = entry_event_labels(s, horizon=3, formation_window=60, exit_z=0.5, stop_z=3.5)

    def z(t: int, k: int) -> float:  # the config-as-of-t's z of the close k sessions later
        return (s.iloc[t + k] - stats["spread_mean"].iloc[t]) / stats["spread_std"].iloc[t]

    # t = 59 (config: mean 0, σ ≈ 1.008): z = 2.48, 1.79, 0.30 → inside the exit band at k = 3
    assert abs(z(59, 3)) <= 0.5 and labels.iloc[59] == 1.0
    assert z(59, 3) == pytest.approx(0.3 / sd)
    # t = 60: the formation window ending at 60 drops a +1 and adds 2.5 → z(60, 2) is the exit, before
    # the 4.0 close (k = 3) that would be a stop
    assert abs(z(60, 2)) <= 0.5 and abs(z(60, 3)) >= 3.5 and labels.iloc[60] == 1.0
    # t = 61: the next closes are 0.3 (z ≈ 0.2, exit) — then 4.0; the exit came first
    assert labels.iloc[61] == 1.0
    # t = 62: 4.0 first: the stop fires before any exit → 0 even though later closes come back
    assert abs(z(62, 1)) >= 3.5 and labels.iloc[62] == 0.0
    # t = 63..66: the spread stays between exit and stop for 3 sessions → 0 (no exit within the horizon)
    assert (labels.iloc[63:67] == 0.0).all()
    # t = 67: 0.1 arrives at k = 3 → 1
    assert labels.iloc[67] == 1.0
    # point in time: the first 59 rows have no formation window, the last 3 no future
    assert labels.iloc[:59].isna().all() and labels.iloc[-3:].isna().all()
    assert labels.iloc[59:-3].notna().all()


def test_entry_event_label_uses_nothing_after_t_plus_horizon_and_no_stale_statistics():
    spread, _, _ = _random_inputs(400, seed=3)
    base = entry_event_labels(spread, horizon=5, formation_window=60)
    changed = spread.copy()
    changed.iloc[300:] = formation_statistics(spread, 60)["spread_mean"].iloc[299]  # back at the config's mean
    after = entry_event_labels(changed, horizon=5, formation_window=60)
    # rows whose look-ahead ends before 300 are unchanged; the config as of 299 sees its exit at 300
    pd.testing.assert_series_equal(base.iloc[: 300 - 5], after.iloc[: 300 - 5])
    assert after.iloc[299] == 1.0
    # a NaN close in the look-ahead makes the outcome unknown, not "no exit"
    gap = spread.copy()
    gap.iloc[200] = np.nan
    labelled = entry_event_labels(gap, horizon=5, formation_window=60)
    assert labelled.iloc[195:200].isna().all() and labelled.iloc[194] in (0.0, 1.0)


def test_entry_event_label_against_given_statistics_a_trading_periods_config():
    s = _hand_spread()
    trailing = formation_statistics(s, 60)
    pd.testing.assert_series_equal(
        entry_event_labels(s, 3, statistics=trailing), entry_event_labels(s, 3, formation_window=60)
    )
    # a config formed at session 59 and kept for the rest: z against its frozen mean 0 and σ
    frozen = trailing.copy()
    frozen.iloc[59:] = trailing.iloc[59].to_numpy()
    labels = entry_event_labels(s, 3, statistics=frozen)
    sd = float(trailing["spread_std"].iloc[59])
    z = (s / sd).to_numpy()
    for t in range(59, len(s) - 3):
        path = np.abs(z[t + 1 : t + 4])
        stop = np.flatnonzero(path >= 3.5)
        exit_ = np.flatnonzero(path <= 0.5)
        expected = float(len(exit_) > 0 and (len(stop) == 0 or exit_[0] < stop[0]))
        assert labels.iloc[t] == expected, t
    with pytest.raises(ValueError, match="statistics lacks column"):
        entry_event_labels(s, 3, statistics=trailing[["spread_mean"]])


def test_entry_event_label_bad_arguments_and_names():
    s = _hand_spread()
    for kwargs, message in (
        ({"horizon": 0}, "horizon must be >= 1"),
        ({"exit_z": 3.5, "stop_z": 3.5}, "need 0 <= exit_z < stop_z"),
        ({"exit_z": -0.1}, "need 0 <= exit_z < stop_z"),
        ({"formation_window": 1}, "formation_window must be >= 2"),
    ):
        with pytest.raises(ValueError, match=message):
            entry_event_labels(s, **kwargs)
    with pytest.raises(ValueError, match="unknown GRU label 'mean'"):
        make_labels(s, "mean")
    pd.testing.assert_series_equal(make_labels(s, "reversion", horizon=3), reversion_labels(s, horizon=3))


def test_label_defaults_are_the_strategy_defaults():
    from pairs_assets.quant import features
    from pairs_assets.settings import DEFAULT_STRATEGY as d

    assert (
        features.DEFAULT_FORMATION_WINDOW,
        features.DEFAULT_ENTRY_Z,
        features.DEFAULT_EXIT_Z,
        features.DEFAULT_STOP_Z,
        features.DEFAULT_HORIZON,
    ) == (d.formation_window, d.entry_z, d.exit_z, d.stop_z, d.gru_horizon)
