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
    for g, l in zip(gain[1:], loss[1:]):
        ag, al = ag + (g - ag) / 14, al + (l - al) / 14
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
    spread, sigma, resid = _random_inputs(min_sessions_for(n_seq, seq_len=10, horizon=5))
    X, _, _ = make_sequences(trim_warmup(build_features(spread, sigma, resid)), reversion_labels(spread), 10)
    assert len(X) == n_seq
    assert min_sessions_for(1000) == 1034


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
