"""The trading-config model (pairs_assets.quant.config_model): versions and fields checked on read, and
the round trip writer → JSON → parse → signal parameters on a real partition (2022-12-14|consumer)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.quant import stages
from pairs_assets.quant.cointegration import spread
from pairs_assets.quant.config_model import SCHEMA_VERSION, TradingConfig, TradingConfigError
from pairs_assets.quant.signals import GarchParams, Levels, PairParams
from pairs_assets.settings import StrategySettings
from pairs_assets_tests import trading_configs as configs

AS_OF, SECTOR = "2022-12-14", "consumer"  # KO-PG is selected on this partition
WHERE = f"trading config {AS_OF}|{SECTOR}"


def small_config() -> TradingConfig:
    garch = configs.garch_block(omega=1e-6, alpha=0.05, beta=0.9, sigma_forecast=0.01)
    pair = configs.pair_config(
        "KO",
        "PG",
        hedge_ratio=0.8,
        intercept=0.3,
        spread_mean=0.01,
        spread_std=0.02,
        garch=garch,
        model=configs.model_block("pairs_trading_gru_garch_consumer", "2", garch=garch),
    )
    return configs.trading_config([pair], as_of=AS_OF, effective="2022-12-15", sector=SECTOR)


# --- read checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, -1, "1", 1.5, None, True])
def test_an_unknown_schema_version_is_refused_naming_it(version):
    document = small_config().document()
    document["schema_version"] = version
    with pytest.raises(TradingConfigError) as raised:
        TradingConfig.parse(document, where=WHERE)
    assert str(raised.value) == f"{WHERE}: unknown schema_version {version!r}; this version of pairs_assets reads 1"
    with pytest.raises(TradingConfigError, match=f"unknown schema_version {version!r}"):  # as JSON text too
        TradingConfig.parse(json.dumps(document), where=WHERE)


def test_a_document_without_schema_version_is_refused():
    document = small_config().document()
    del document["schema_version"]
    with pytest.raises(TradingConfigError) as raised:
        TradingConfig.parse(document, where=WHERE)
    assert str(raised.value) == f"{WHERE}: no schema_version field; this version of pairs_assets reads 1"


def test_building_a_model_of_an_unknown_version_is_refused_too():
    document = small_config().document() | {"schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(ValueError, match="unknown trading config schema_version 2"):
        TradingConfig.model_validate(document)


def _broken(edit) -> str:
    document = small_config().document()
    edit(document)
    with pytest.raises(TradingConfigError) as raised:
        TradingConfig.parse(document, where=WHERE)
    return str(raised.value)


def test_missing_unknown_and_malformed_fields_are_refused_naming_the_field():
    message = _broken(lambda d: d.pop("risk"))
    assert message.startswith(f"{WHERE}: field risk: Field required")
    message = _broken(lambda d: d.update(wall_clock="2022-12-14T22:00:00"))
    assert message.startswith(f"{WHERE}: field wall_clock: Extra inputs are not permitted")
    message = _broken(lambda d: d["pairs"][0]["garch"].pop("omega"))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).garch.omega: Field required")
    # the sizing keys are pair_sizing's, not the risk limits'
    message = _broken(lambda d: d["pairs"][0]["sizing"].update(max_position=0.1))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).sizing.max_position: Extra inputs are not permitted")
    message = _broken(lambda d: d["pairs"][0].update(hedge_ratio="abc"))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).hedge_ratio: a string ('abc') is not a number")
    message = _broken(lambda d: d["pairs"][0].update(spread_std=None))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).spread_std: Input should be a valid number")
    message = _broken(lambda d: d["pairs"][0]["model"].pop("feature_garch"))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).model.feature_garch: Field required")
    message = _broken(lambda d: d["windows"].update(gru="long"))
    assert message.startswith(f"{WHERE}: field windows.gru: a string ('long') is not a number")


def test_text_that_is_not_a_config_object_is_refused():
    with pytest.raises(TradingConfigError, match=f"^{WHERE}: not valid JSON"):
        TradingConfig.parse(b'{"schema_version": 1,', where=WHERE)
    with pytest.raises(TradingConfigError, match=f"^{WHERE}: a trading config is a JSON object, got list"):
        TradingConfig.parse("[1]", where=WHERE)


def test_non_finite_floats_are_stored_as_null():
    garch = configs.garch_block(omega=1e-6, alpha=0.3, beta=0.8, sigma_forecast=float("nan"))  # not stationary
    pair = configs.pair_config(
        "KO",
        "PG",
        hedge_ratio=0.8,
        intercept=0.3,
        spread_mean=0.0,
        spread_std=0.02,
        garch=garch,
        half_life=math.inf,
        correlation=np.float64(0.9),
    )
    config = configs.trading_config([pair], as_of=AS_OF, effective="2022-12-15", sector=SECTOR)
    stored = json.loads(config.to_json_bytes())["pairs"][0]
    assert stored["garch"]["sigma_forecast"] is None and stored["garch"]["unconditional_sigma"] is None
    assert stored["half_life"] is None and stored["correlation"] == 0.9
    assert TradingConfig.parse(config.to_json_bytes()) == config


# --- the round trip on a real partition ----------------------------------------------------------


@pytest.fixture(scope="module")
def written():
    """The real stages and writer on the embedded closes of 2022-12-14|consumer, with a GRU row as
    gru_models writes it (its feature GARCH from the real garch_features; registry fields made up)."""
    from pairs_assets.quant.pipeline.gru import GRU_COLUMNS
    from pairs_assets.quant.stages import garch_features, gru_config, pair_spread
    from pairs_assets.settings import EMBEDDED_HISTORY_START, EMBEDDED_UNIVERSE_FILE
    from pairs_assets.universe import load_universe
    from resources.bar_sources import EmbeddedBarSource

    strategy = StrategySettings.preset("seed")
    symbols = list(load_universe(EMBEDDED_UNIVERSE_FILE).symbols(SECTOR))
    sessions = partitions.window_sessions(AS_OF, strategy.history_sessions, history_start=EMBEDDED_HISTORY_START)
    bars = EmbeddedBarSource().load_bars(symbols, *partitions.sessions_span_utc(sessions[0], sessions[-1]))
    session = bars["timestamp"].dt.tz_convert(partitions.EXCHANGE_TZ).dt.tz_localize(None).dt.normalize()
    closes = bars.assign(session=session).pivot(index="session", columns="symbol", values="close").reindex(sessions)
    assert not closes.isna().to_numpy().any()
    formation = closes.iloc[-strategy.formation_window :]
    correlation = stages.correlation_stage(formation, strategy)
    result, _ = stages.cointegration_stage(formation, correlation.matrix, strategy)
    pairs = result.pairs
    legs = sorted(set(pairs["y"]) | set(pairs["x"]))
    garch = stages.garch_stage(closes[legs].iloc[-(strategy.garch_window + 1) :], pairs, strategy)
    scores, _ = stages.selection_stage(
        closes[legs].iloc[-(strategy.backtest_window + strategy.formation_window) :], pairs, garch, strategy
    )
    rows = []
    for pair in pairs[pairs["pair_id"].isin(scores.loc[scores["selected"], "pair_id"])].itertuples():
        pair_spread_ = pair_spread(
            closes.iloc[-strategy.gru_window :], pair.y, pair.x, pair.hedge_ratio, pair.intercept
        )
        _, feature_garch = garch_features(pair_spread_, gru_config(strategy), strategy.gru_horizon)
        rows.append(
            {
                "pair_id": pair.pair_id,
                "status": "trained",
                "reason": "",
                "model_name": "pairs_trading_gru_garch_consumer",
                "model_version": "4",
                "mlflow_run_id": "0f1e2d3c",
                "probability_threshold": 0.4375,
                "test_f1": 0.61,
                "best_baseline_f1": 0.52,
                "beats_baselines": True,
                **{f"feature_garch_{k}": v for k, v in feature_garch.items()},
            }
        )
    models = pd.DataFrame(rows, columns=GRU_COLUMNS)
    config = stages.build_trading_config(
        as_of=AS_OF,
        effective_session=str(partitions.next_session(AS_OF).date()),
        sector=SECTOR,
        source="embedded:skfolio-sp500",
        symbols=symbols,
        pairs=pairs,
        garch=garch,
        scores=scores,
        models=models,
        formation_closes=formation,
        strategy=strategy,
        fingerprint="round-trip",
    )
    return config, pairs, garch, models, formation, strategy


def test_the_config_says_whether_the_gru_gates(written):
    """Issue 8 item 6: written from the strategy's gru_gate; a document from before the field was gated."""
    config, *_ = written
    assert config.gru_gate is True and config.document()["gru_gate"] is True  # the seed gates
    off = config.model_copy(update={"gru_gate": False})
    assert TradingConfig.parse(off.to_json_bytes()).gru_gate is False
    older = {k: v for k, v in config.document().items() if k != "gru_gate"}
    assert TradingConfig.parse(older).gru_gate is True
    assert StrategySettings().gru_gate is False and StrategySettings.preset("seed").gru_gate is True


def test_round_trip_writer_json_parse_pair_params_keeps_every_number(written):
    config, pairs, garch, models, formation, strategy = written
    assert [p.pair_id for p in config.pairs] == ["KO-PG"]
    data = config.to_json_bytes()
    parsed = TradingConfig.parse(data, where=WHERE)
    assert parsed == config and parsed.to_json_bytes() == data  # JSON keeps every float exactly

    pair = parsed.pairs[0]
    params = PairParams.from_pair_config(pair)
    source = pairs.set_index("pair_id").loc["KO-PG"]
    fit = garch.set_index("pair_id").loc["KO-PG"]
    model = models.set_index("pair_id").loc["KO-PG"]
    formation_spread = spread(formation["KO"], formation["PG"], source["hedge_ratio"], source["intercept"])
    assert (params.pair_id, params.y, params.x) == ("KO-PG", source["y"], source["x"])
    assert params.hedge_ratio == source["hedge_ratio"] and params.intercept == source["intercept"]
    assert params.correlation == source["correlation"] and params.half_life == source["half_life"]
    assert params.spread_mean == formation_spread.mean() and params.spread_std == formation_spread.std(ddof=1)
    assert params.garch == GarchParams(
        mu=fit["mu"],
        omega=fit["omega"],
        alpha=fit["alpha"],
        beta=fit["beta"],
        sigma_forecast=fit["sigma_forecast"],
        unconditional_sigma=fit["unconditional_sigma"],
    )
    assert params.levels == Levels(strategy.entry_z, strategy.exit_z, strategy.stop_z)
    assert (params.model_name, params.model_version) == ("pairs_trading_gru_garch_consumer", "4")
    assert params.probability_threshold == 0.4375 and params.model_beats_baselines is True
    feature = params.feature_garch
    assert (feature.mu, feature.omega, feature.alpha, feature.beta) == tuple(
        model[f"feature_garch_{k}"] for k in ["mu", "omega", "alpha", "beta"]
    )
    assert all(math.isfinite(v) for v in (params.garch.omega, params.garch.sigma_forecast, feature.omega))
    assert pair.sizing.y_fraction > 0 and pair.sizing.gross_fraction == pytest.approx(
        pair.sizing.y_fraction + pair.sizing.x_fraction
    )


# --- numbers that make no sense (issue 21 item 9) -------------------------------------------------
# Before: each of these parsed (``true`` as 1.0) and the signal job decided STOP on it, no flag.


@pytest.mark.parametrize(
    ("edit", "field", "reason"),
    [
        (
            lambda d: d["pairs"][0].update(hedge_ratio=True),
            "pairs[0] (KO-PG).hedge_ratio",
            "a boolean (true) is not a number",
        ),
        (
            lambda d: d["pairs"][0].update(spread_mean=False),
            "pairs[0] (KO-PG).spread_mean",
            "a boolean (false) is not a number",
        ),
        (
            lambda d: d["pairs"][0]["levels"].update(stop_z=True),
            "pairs[0] (KO-PG).levels.stop_z",
            "a boolean (true) is not a number",
        ),
        (
            lambda d: d["pairs"][0]["scores"].update(rank=True),
            "pairs[0] (KO-PG).scores.rank",
            "a boolean (true) is not a number",
        ),
        (lambda d: d["windows"].update(gru=True), "windows.gru", "a boolean (true) is not a number"),
        (lambda d: d["risk"].update(max_position=True), "risk.max_position", "a boolean (true) is not a number"),
        (
            lambda d: d["pairs"][0].update(hedge_ratio="0.8"),
            "pairs[0] (KO-PG).hedge_ratio",
            "a string ('0.8') is not a number",
        ),
    ],
)
def test_a_boolean_or_a_quoted_number_is_not_a_number(edit, field, reason):
    assert _broken(edit) == f"{WHERE}: field {field}: {reason} (1 error(s))"


def test_an_implausible_hedge_ratio_is_refused_naming_pair_and_field():
    message = _broken(lambda d: d["pairs"][0].update(hedge_ratio=1e300))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).hedge_ratio: hedge_ratio=1e+300 is not plausible")
    assert "|hedge_ratio| <= 100" in message
    message = _broken(lambda d: d["pairs"][0].update(hedge_ratio=0.0))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).hedge_ratio: hedge_ratio=0 is not plausible")
    message = _broken(lambda d: d["pairs"][0].update(hedge_ratio=-250.0))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).hedge_ratio: hedge_ratio=-250 is not plausible")


@pytest.mark.parametrize("field", ["intercept", "spread_mean"])
def test_an_implausible_spread_level_is_refused(field):
    message = _broken(lambda d: d["pairs"][0].update({field: 1e300}))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).{field}: {field}=1e+300 is not plausible")


def test_any_number_beyond_the_plausible_magnitude_is_refused():
    message = _broken(lambda d: d["pairs"][0]["garch"].update(omega=1e300))
    assert message.startswith(
        f"{WHERE}: field pairs[0] (KO-PG).garch.omega: 1e+300 is beyond the plausible magnitude 1e+09"
    )
    message = _broken(lambda d: d["risk"].update(target_daily_vol=-1e300))
    assert message.startswith(f"{WHERE}: field risk.target_daily_vol: -1e+300 is beyond the plausible magnitude 1e+09")


@pytest.mark.parametrize("value", [1e-300, 1e-7, 0.0, -0.02, 1e300])
def test_a_spread_std_outside_its_floor_and_ceiling_is_refused(value):
    message = _broken(lambda d: d["pairs"][0].update(spread_std=value))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).spread_std: spread_std={value:g} is not plausible")


def test_the_spread_std_floor_is_relative_to_the_spread_scale():
    """Absolute floor 1e-6; with a large intercept, 1e-9 of its magnitude (rounding of the spread)."""
    document = small_config().document()
    document["pairs"][0].update(spread_std=2e-6)
    assert TradingConfig.parse(document, where=WHERE).pairs[0].spread_std == 2e-6
    document["pairs"][0].update(intercept=5000.0)  # floor 5e-6
    with pytest.raises(TradingConfigError, match=r"spread_std=2e-06 is not plausible \(.*at least 5e-06"):
        TradingConfig.parse(document, where=WHERE)


def test_a_pair_of_one_symbol_with_itself_is_refused():
    message = _broken(lambda d: d["pairs"][0].update(x="KO"))
    assert (
        message
        == f"{WHERE}: field pairs[0] (KO-PG).x: x is KO, the same symbol as y: a pair needs two symbols (1 error(s))"
    )
    message = _broken(lambda d: d["pairs"][0].update(x=" ko"))
    assert message.startswith(f"{WHERE}: field pairs[0] (KO-PG).x: x is ' ko', the same symbol as y")


def test_plausible_numbers_still_parse_and_the_writer_round_trip_holds():
    config = small_config()
    assert TradingConfig.parse(config.to_json_bytes(), where=WHERE) == config
    document = config.document()
    document["pairs"][0].update(hedge_ratio=-2.5, intercept=-40.0, spread_std=0.5)  # unusual, not absurd
    assert TradingConfig.parse(document, where=WHERE).pairs[0].hedge_ratio == -2.5


def test_the_writer_refuses_what_the_reader_would_naming_the_partition():
    """The writer parses its document as the reader does: an implausible fit fails the partition
    with a TradingConfigError, not a config the signal job would trade (or a bare pydantic error)."""
    rng = np.random.default_rng(3)
    x = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    formation = pd.DataFrame({"KO": x * 1.01, "PG": x})
    pairs = pd.DataFrame(
        [
            {
                "pair_id": "KO-PG",
                "y": "KO",
                "x": "PG",
                "hedge_ratio": 250.0,
                "intercept": 0.0,
                "half_life": 5.0,
                "correlation": 0.9,
                "eg_pvalue": 0.01,
            }
        ]
    )
    garch = pd.DataFrame(
        [
            {
                "pair_id": "KO-PG",
                "mu": 0.0,
                "omega": 1e-6,
                "alpha": 0.05,
                "beta": 0.9,
                "persistence": 0.95,
                "sigma_forecast": 0.01,
                "unconditional_sigma": 0.0045,
            }
        ]
    )
    scores = pd.DataFrame(
        [
            {
                "pair_id": "KO-PG",
                "selected": True,
                "rank": 1,
                "aic_score": 0.5,
                "forecast_score": 0.5,
                "backtest_score": 0.5,
                "diagnostic_score": 0.5,
                "composite": 0.5,
            }
        ]
    )
    with pytest.raises(TradingConfigError) as raised:
        stages.build_trading_config(
            as_of=AS_OF,
            effective_session="2022-12-15",
            sector=SECTOR,
            source="test",
            symbols=["KO", "PG"],
            pairs=pairs,
            garch=garch,
            scores=scores,
            models=None,
            formation_closes=formation,
            strategy=StrategySettings(),
            fingerprint="f",
        )
    assert str(raised.value).startswith(
        f"{WHERE}: field pairs[0] (KO-PG).hedge_ratio: hedge_ratio=250 is not plausible"
    )
