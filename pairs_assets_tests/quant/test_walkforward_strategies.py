"""The walk-forward over strategy plugins (issue 19): the legacy run is the built-ins garch_gru (as
``default``) and the baseline, frame for frame; given strategies report side by side in their order
beside the baseline; their windows, labels and schemas are checked before anything runs."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.assets.walk_forward import plugin_run_params
from pairs_assets.quant.walkforward.engine import (
    WalkForwardError,
    WalkForwardSettings,
    required_history,
    run_walk_forward,
)
from pairs_assets.quant.walkforward.ledger import trials_from_runs
from pairs_assets.quant.walkforward.replay import SectorPanel
from pairs_assets.settings import StrategySettings
from pairs_assets.strategies.base import SectorResult, StrategyPluginError
from pairs_assets.strategies.builtins import BaselineParams, BaselineStrategy, GarchGruStrategy, SeedStrategy
from pairs_assets_tests.planted import planted_closes
from pairs_assets_tests.strategy_fixtures import FlatStrategy

SYMBOLS = ["AAPL", "AMD", "MSFT"]


@pytest.fixture(scope="module")
def panels():
    closes = planted_closes(n_sessions=1160, phi=0.3)[SYMBOLS]
    return {"technology": SectorPanel(sector="technology", closes=closes, source="planted")}


def _settings(**extra) -> WalkForwardSettings:
    return WalkForwardSettings(
        start="2022-11-01",
        end="2022-12-28",
        costs=[0, 5],
        periods=[("nov", "2022-11-01", "2022-11-30")],
        selection=("2022-11-01", "2022-11-30"),
        bootstrap_resamples=50,
        min_trades=3,
        workers=1,
        **extra,
    )


def _run(panels, settings, strategy=None, strategies=None):
    return run_walk_forward(
        panels,
        {"technology": SYMBOLS},
        partitions.next_session,
        strategy,
        settings,
        strategies=strategies,
    )


def test_the_legacy_run_is_the_builtins_frame_for_frame(panels):
    settings = _settings()
    seed = StrategySettings.preset("seed")
    legacy = _run(panels, settings, seed)
    explicit = _run(
        panels,
        settings,
        strategies=[
            GarchGruStrategy("default", seed.strategy()),
            BaselineStrategy("baseline", BaselineParams.from_settings(settings)),
        ],
    )
    assert list(dict.fromkeys(legacy.summary["strategy"])) == ["default", "baseline"]
    pd.testing.assert_frame_equal(legacy.summary, explicit.summary)
    pd.testing.assert_frame_equal(legacy.daily, explicit.daily)
    pd.testing.assert_frame_equal(legacy.trades, explicit.trades)
    assert legacy.configs == explicit.configs and legacy.trials.trials == explicit.trials.trials
    # SeedStrategy is the same class at the seed preset's defaults: the same trades under its own name
    seeded = _run(panels, settings, strategies=[SeedStrategy("default")])
    pd.testing.assert_frame_equal(legacy.summary, seeded.summary)


def test_strategies_side_by_side_in_their_order_beside_the_appended_baseline(panels):
    settings = _settings()
    strategies = [
        FlatStrategy("flat", {"window": 5}),
        SeedStrategy("seed"),
        SeedStrategy("seed_wide", {"entry_z": 2.5}),
    ]
    result = _run(panels, settings, strategies=strategies)
    summary = result.summary
    assert list(dict.fromkeys(summary["strategy"])) == ["flat", "seed", "seed_wide", "baseline"]
    assert set(result.daily["strategy"]) == {"flat", "seed", "seed_wide", "baseline"}
    total = summary[(summary["sector"] == "all") & (summary["period"] == "full")].set_index(["strategy", "cost_bp"])
    assert total.loc[("flat", 0.0), "trades"] == 0
    assert total.loc[("seed", 5.0), "trades"] >= 3
    # every strategy compared with the baseline on the same days; the baseline with nothing
    by = summary.set_index(["strategy", "sector", "cost_bp", "period"])
    for (name, sector, cost, period), row in by.iterrows():
        base = by.loc[("baseline", sector, cost, period), "sharpe"]
        if name != "baseline" and row["sharpe"] == row["sharpe"] and base == base:
            assert row["vs_baseline"] == pytest.approx(row["sharpe"] - base, rel=1e-9, abs=1e-12)
    assert total.xs("baseline", level="strategy")["vs_baseline"].isna().all()
    # a trial per selected strategy's label (the baseline is fixed in advance), keyed by its parameters
    assert result.trials.n_trials == 3  # flat, seed, seed_wide
    assert len({t.key for t in result.trials.trials}) == 3
    assert total.xs("baseline", level="strategy")["deflated_sharpe"].isna().all()
    # recorded as the walk-forward asset logs it, the ledger reads the same trials back
    recorded = {
        "run_id": "r1",
        "start_time": 1.0,
        "params": {
            **{f"wf.{k}": str(v) for k, v in settings.model_dump(mode="json").items()},
            **{k: str(v) for k, v in plugin_run_params(strategies, settings).items()},
        },
        "metrics": {
            f"{r.strategy}.{r.cost_bp:g}bp.{r.period}.{key}": getattr(r, key)
            for r in summary[summary["sector"] == "all"].itertuples()
            for key in ("sharpe", "trades")
            if getattr(r, key) == getattr(r, key)  # the registry logs finite metrics only
        },
    }
    read = trials_from_runs([recorded], settings.selection)
    expected = {t.key: t.sharpe for t in result.trials.trials}
    assert len(expected) == 3 and {t.key for t in read} == set(expected)
    for trial in read:
        assert trial.sharpe == pytest.approx(expected[trial.key], rel=1e-9)
    seed_rows = summary[summary["strategy"] == "seed"].reset_index(drop=True)
    alone = _run(panels, settings, strategies=[SeedStrategy("seed")]).summary
    pd.testing.assert_frame_equal(
        seed_rows.drop(columns=["n_trials", "trial_sharpe_sd", "deflated_sharpe"]),
        alone[alone["strategy"] == "seed"]
        .reset_index(drop=True)
        .drop(columns=["n_trials", "trial_sharpe_sd", "deflated_sharpe"]),
    )


def test_a_window_longer_than_the_bars_names_the_strategy(panels):
    settings = _settings()
    long = FlatStrategy("flat_long", {"window": 5000})
    assert required_history([long], settings) == 5000
    with pytest.raises(WalkForwardError) as raised:
        _run(panels, settings, strategies=[SeedStrategy("seed"), long])
    message = str(raised.value)
    assert "longest window (strategy 'flat_long') needs 5000 sessions of bars before it" in message
    assert "\n" not in message


def test_two_strategies_reporting_one_label_are_refused(panels):
    with pytest.raises(WalkForwardError, match="strategies 'a' and 'a_gru' both report rows labelled 'a_gru'"):
        _run(panels, _settings(gru=True), strategies=[SeedStrategy("a"), FlatStrategy("a_gru")])


def test_parameters_failing_the_schema_are_one_line():
    with pytest.raises(StrategyPluginError, match=r"^strategy 'seed': parameter formation_window: Input should be"):
        SeedStrategy("seed", {"formation_window": 5})
    with pytest.raises(StrategyPluginError, match="strategy 'b': parameter top_n: Input should be greater"):
        BaselineStrategy("b", {"top_n": 0})


def test_plugins_travel_to_worker_processes():
    for plugin in (SeedStrategy("seed", {"entry_z": 2.5}), BaselineStrategy("baseline"), FlatStrategy("flat")):
        copy = pickle.loads(pickle.dumps(plugin))
        assert type(copy) is type(plugin) and copy.params == plugin.params and copy.name == plugin.name


def test_labels_and_windows_of_the_builtins():
    settings = _settings()
    gated = _settings(gru=True)
    assert GarchGruStrategy("x").labels(settings) == ("x",)
    assert GarchGruStrategy("x").labels(gated) == ("x", "x_gru")
    assert BaselineStrategy("b").required_history(settings) == 252 + 126
    seed = StrategySettings.preset("seed")
    legacy = required_history(seed, settings)
    assert legacy == max(SeedStrategy("s").required_history(settings), 252 + 126)


class _TwoRows(FlatStrategy):
    """Two label variants, its labels() taking no settings (an override the engine accepts)."""

    def labels(self):
        return (self.name, f"{self.name}_b")

    def walk_forward_sector(self, ctx):
        one = super().walk_forward_sector(ctx).executions[self.name]
        return SectorResult(executions={self.name: one, f"{self.name}_b": one})


def test_a_strategys_labels_are_its_rows_in_order(panels):
    result = _run(panels, _settings(), strategies=[_TwoRows("two"), FlatStrategy("flat")])
    assert list(dict.fromkeys(result.summary["strategy"])) == ["two", "two_b", "flat", "baseline"]
    assert result.trials.n_trials == 3  # two, two_b and flat: each a trial
