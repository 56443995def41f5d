"""The periodic strategy base and the distance method's daily pipeline on real embedded data: the
daily graph's configs equal the walk-forward's; bad inputs give one clear error naming the strategy."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pairs_assets import partitions
from pairs_assets.assets.common import read_panel
from pairs_assets.assets.strategy_assets import plugin_assets, plugin_resources
from pairs_assets.assets.walk_forward import baseline_session_number
from pairs_assets.errors import InsufficientHistoryError
from pairs_assets.quant.config_model import TradingConfig
from pairs_assets.quant.pipeline import Pipeline, PipelineError, StageSpec
from pairs_assets.quant.walkforward.engine import WalkForwardSettings
from pairs_assets.quant.walkforward.replay import SectorPanel
from pairs_assets.settings import EMBEDDED_BARS_FILE
from pairs_assets.strategies.base import SectorContext, StrategyPluginError
from pairs_assets.strategies.distance import DistanceStrategy
from pairs_assets.strategies.periodic import (
    PAIR_COLUMNS,
    PeriodicHistoryError,
    PeriodicStageError,
    PeriodicStrategy,
    trading_config_path,
)
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY, daily_asset, preload_history, resources_for
from resources.bar_sources import EmbeddedBarSource
from resources.market_data import MarketDataStore

TECHNOLOGY = ["AAPL", "AMD", "MSFT"]


class FirstPair(PeriodicStrategy):
    """The first two symbols, hedge ratio 1, spread statistics of the window (a test's own plugin)."""

    def select(self, closes_window, params):
        y, x = sorted(closes_window.columns)[:2]
        spread = np.log(closes_window[y]) - np.log(closes_window[x])
        return pd.DataFrame(
            [[f"{y}-{x}", y, x, 1.0, 0.0, float(spread.mean()), float(spread.std(ddof=0))]], columns=PAIR_COLUMNS
        )


def context(panel: SectorPanel, start, end, anchor=None) -> SectorContext:
    index = panel.closes.index
    sessions = index[(index >= pd.Timestamp(start)) & (index <= pd.Timestamp(end))]
    first = index.get_loc(sessions[0])
    return SectorContext(
        panel=panel,
        symbols=tuple(panel.closes.columns),
        sessions=sessions,
        as_of=index[first - 1 : index.get_loc(sessions[-1])],
        effective=list(sessions),
        settings=WalkForwardSettings(costs=[0.0], lag=1, start=str(sessions[0].date()), end=str(end)),
        next_session=partitions.next_session,
        anchor=anchor,
    )


@pytest.fixture(scope="module")
def embedded() -> pd.DataFrame:
    return pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", *TECHNOLOGY])


def test_distance_daily_pipeline_configs_equal_its_walk_forward_configs(tmp_path, own_pairs_home):
    """The distance method's two daily stages (a range run over a period's end: the closing config
    with no pair, then the next period's) give the configs its walk-forward trades, field for field."""
    strategy = DistanceStrategy("distance", {"formation": 60, "trading": 10})
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    source = EmbeddedBarSource()
    preload_history(url, source, TECHNOLOGY, "2022-12-29", 100)
    resources = {**resources_for(url, source, home=own_pairs_home), **plugin_resources(strategy)}
    result = dg.materialize(
        [daily_asset("raw_bars"), *plugin_assets(strategy, EMBEDDED_DAILY)],
        selection=["distance/selected_pairs", "distance/trading_config"],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags={
            ASSET_PARTITION_RANGE_START_TAG: "2022-12-09|technology",
            ASSET_PARTITION_RANGE_END_TAG: "2022-12-28|technology",
        },
    )
    assert result.success
    sessions = partitions.sessions_in_range("2022-08-01", "2022-12-29")
    panel = read_panel(MarketDataStore(database_url=url), source.source_name, "technology", TECHNOLOGY, sessions)
    ctx = context(panel, "2022-12-12", "2022-12-29", anchor=baseline_session_number(panel.closes.index[0]))
    configs, _traded = strategy.configs(ctx)
    as_ofs = partitions.sessions_in_range("2022-12-09", "2022-12-28")
    empty = []
    for as_of in as_ofs:
        written = TradingConfig.parse(
            trading_config_path(own_pairs_home.outputs_dir, "distance", str(as_of.date()), "technology").read_bytes()
        )
        assert written.document() == configs[as_of].document(), as_of
        empty += [] if written.pairs else [as_of]
    assert len(empty) >= 1 and len(empty) < len(as_ofs)  # a period's last session closes, the others trade
    record = MarketDataStore(database_url=url).latest_trading_config_record(
        "technology", "2022-12-28", strategy="distance"
    )
    assert record is not None and record.strategy == "distance"


def test_a_formation_window_longer_than_the_bars_is_one_error_naming_strategy_stage_and_window(embedded):
    panel = SectorPanel("technology", embedded.iloc[:100], "embedded")
    ctx = context(panel, embedded.index[50], embedded.index[99])
    strategy = FirstPair("first_pair", {"formation": 80, "every": 5})
    with pytest.raises(
        PeriodicHistoryError,
        match=r"^strategy 'first_pair', stage selected_pairs, sector technology: the formation window of 80 sessions",
    ) as caught:
        strategy.walk_forward_sector(ctx)
    assert isinstance(caught.value, InsufficientHistoryError) and "\n" not in str(caught.value)


def test_the_daily_stage_names_the_strategy_stage_and_window_at_the_start_of_history(tmp_path, own_pairs_home):
    strategy = FirstPair("first_pair", {"formation": 80, "every": 5})
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    source = EmbeddedBarSource()
    preload_history(url, source, TECHNOLOGY, "1990-03-01", 30)
    result = dg.materialize(
        [daily_asset("raw_bars"), *plugin_assets(strategy, EMBEDDED_DAILY)],
        selection=["first_pair/selected_pairs"],
        partition_key=partitions.partition_key("1990-03-01", "technology"),
        resources={**resources_for(url, source, home=own_pairs_home), **plugin_resources(strategy)},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    message = error.message + (error.cause.message if error.cause else "")
    assert (
        "strategy 'first_pair', stage selected_pairs, partition 1990-03-01|technology: the formation window of 80 sessions"
        in message
    )


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"pair_id": ["A-B"]}), "select\\(\\) returned no column\\(s\\) y, x, hedge_ratio"),
        ("not a frame", "select\\(\\) returned str, not a DataFrame"),
        (
            pd.DataFrame(
                [["AAPL-ZZZ", "AAPL", "ZZZ", 1.0, 0.0, 0.0, 0.1]],
                columns=["pair_id", "y", "x", "hedge_ratio", "intercept", "spread_mean", "spread_std"],
            ),
            "pair AAPL-ZZZ: legs AAPL, ZZZ not two symbols of the window",
        ),
        (
            pd.DataFrame(
                [["AAPL-AMD", "AAPL", "AMD", float("nan"), 0.0, 0.0, 0.1]],
                columns=["pair_id", "y", "x", "hedge_ratio", "intercept", "spread_mean", "spread_std"],
            ),
            "pair AAPL-AMD: non-finite",
        ),
        (
            pd.DataFrame(
                [["AAPL-AMD", "AAPL", "AMD", 1.0, 0.0, 0.0, 0.1]] * 2,
                columns=["pair_id", "y", "x", "hedge_ratio", "intercept", "spread_mean", "spread_std"],
            ),
            "select\\(\\) returned pair_id AAPL-AMD twice",
        ),
    ],
)
def test_a_select_frame_failing_validation_is_a_pipeline_error_naming_the_strategy(embedded, frame, message):
    class Bad(PeriodicStrategy):
        def select(self, closes_window, params):
            return frame

    panel = SectorPanel("technology", embedded.loc["2020-01-01":"2020-12-31"], "embedded")
    ctx = context(panel, "2020-06-01", "2020-06-30")
    with pytest.raises(
        PipelineError, match=r"^strategy 'bad_one', stage selected_pairs, sector technology, formation .*: " + message
    ) as caught:
        Bad("bad_one", {"formation": 60, "every": 5}).walk_forward_sector(ctx)
    assert isinstance(caught.value, PeriodicStageError)


def test_a_pipeline_that_fails_validation_is_a_pipeline_error_naming_the_strategy():
    class Extra(FirstPair):
        def pipeline(self):
            base = super().pipeline()
            stray = StageSpec(
                name="report",
                inputs=("no_such_stage",),
                window=lambda s: 1,
                window_detail=lambda s: "1 session",
                compute=lambda run, p: None,
                description="a stage reading a stage that is not there",
                kinds=frozenset(),
            )
            return Pipeline(self.name, [*base, stray])

    with pytest.raises(PipelineError, match=r"^pipeline 'extra': stage 'report' input 'no_such_stage' is no stage"):
        plugin_assets(Extra("extra"), EMBEDDED_DAILY)


def test_params_are_validated_naming_the_strategy_and_a_walk_forward_only_plugin_has_no_assets():
    with pytest.raises(StrategyPluginError, match=r"strategy 'p': parameter .*phase must be below every"):
        FirstPair("p", {"every": 5, "phase": 5})
    with pytest.raises(StrategyPluginError, match=r"strategy 'p': parameter .*exit_z < entry_z < stop_z"):
        FirstPair("p", {"entry_z": 5.0, "stop_z": 4.0})
    with pytest.raises(StrategyPluginError, match=r"strategy 'p': parameter formation_window: Extra inputs"):
        FirstPair("p", {"formation_window": 5})
    (resource,) = plugin_resources(FirstPair("p")).values()
    bad = resource.model_copy(update={"params_json": '{"every": 0}'})
    with pytest.raises(StrategyPluginError, match=r"strategy 'p': parameter every"):
        bad.params()


def test_formation_sessions_are_the_calendar_schedule_whatever_the_range(embedded):
    """The walk-forward picks the daily graph's formation session for each as-of session, for any range."""
    strategy = FirstPair("first_pair", {"formation": 40, "every": 7, "phase": 3})
    for start in ("2015-01-02", "2015-03-17"):
        panel = SectorPanel("technology", embedded.loc[start:"2016-12-31"], "embedded")
        configs = strategy.configs(context(panel, "2016-01-04", "2016-03-31"))
        for as_of, config in configs.items():
            expected = partitions.formation_session(as_of, 7, phase=3)
            assert (config.formation_session or config.as_of_session) == str(expected.date())


def test_close_at_period_end_empties_the_config_before_each_formation(embedded):
    class Closing(FirstPair):
        close_at_period_end = True
        on_drop = "exit"

    strategy = Closing("closing", {"formation": 40, "every": 7, "phase": 3})
    panel = SectorPanel("technology", embedded.loc["2015-01-02":"2016-12-31"], "embedded")
    ctx = context(panel, "2016-01-04", "2016-03-31")
    configs = strategy.configs(ctx)
    for config in configs.values():
        effective = pd.Timestamp(config.effective_session)
        closes_period = partitions.formation_session(effective, 7, phase=3) == effective
        assert (len(config.pairs) == 0) == closes_period, config.as_of_session
    trades = strategy.walk_forward_sector(ctx).executions["closing"][0.0][1]
    # every position is closed by the period's end (the empty config, on_drop="exit"), none carried over
    assert len(trades) >= 1 and set(trades["exit_reason"]) <= {
        "exit",
        "stop",
        "config_drop",
        "max_holding",
        "range_end",
    }
    held = trades.dropna(subset=["exit_session"])
    for trade in held.itertuples():
        start = partitions.formation_session(trade.entry_session, 7, phase=3)
        assert partitions.formation_session(trade.exit_session, 7, phase=3) in (start, pd.Timestamp(trade.exit_session))


class WrongSigma(FirstPair):
    """FirstPair reporting its spread's σ on prices, not log prices: z would be measured in the wrong unit."""

    def select(self, closes_window, params):
        pairs = super().select(closes_window, params)
        y, x = pairs.loc[0, "y"], pairs.loc[0, "x"]
        return pairs.assign(spread_std=float((closes_window[y] - closes_window[x]).std(ddof=0)))


@pytest.mark.parametrize(("plugin_class", "passes"), [(FirstPair, True), (WrongSigma, False)])
def test_spread_std_check_gates_the_trading_config(plugin_class, passes, tmp_path, own_pairs_home):
    """selected_pairs' blocking check re-measures each pair's σ on the formation window: a plugin
    whose σ is not its spread's gets no trading config for that partition (the check fails, named)."""
    strategy = plugin_class("firstpair", {"formation": 60, "every": 5})
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    source = EmbeddedBarSource()
    preload_history(url, source, TECHNOLOGY, "2022-12-29", 100)
    resources = {**resources_for(url, source, home=own_pairs_home), **plugin_resources(strategy)}
    result = dg.materialize(
        [daily_asset("raw_bars"), *plugin_assets(strategy, EMBEDDED_DAILY)],
        selection=["firstpair/selected_pairs", "firstpair/trading_config"],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        partition_key="2022-12-28|technology",
        raise_on_error=False,
    )
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["spread_std_matches_window"].passed is passes
    assert evaluations["legs_close_at_formation"].passed
    written = trading_config_path(own_pairs_home.outputs_dir, "firstpair", "2022-12-28", "technology")
    assert written.exists() is passes
    if not passes:
        violations = evaluations["spread_std_matches_window"].metadata["violations"].value
        assert "spread_std" in violations and "window σ" in violations
