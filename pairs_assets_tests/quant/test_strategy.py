"""The pure strategy model (``pairs_assets.quant.strategy``): one source for the strategy's fields,
defaults, presets, validators and windows, which the Dagster resource only wraps."""

from __future__ import annotations

import ast
import inspect
import pickle
from pathlib import Path

import pytest

from pairs_assets.quant import features, prices, scoring, signals
from pairs_assets.quant.gru import pairs as gru_pairs
from pairs_assets.quant.strategy import DEFAULT_STRATEGY, PRESETS, STAGE_WINDOWS, Strategy, StrategyError
from pairs_assets.settings import StrategySettings

QUANT = Path(__file__).resolve().parents[2] / "pairs_assets" / "quant"


# --- one source -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_of_the_resource_is_the_pure_models(name):
    pure, resource = Strategy.preset(name), StrategySettings.preset(name)
    assert type(pure) is Strategy and type(resource) is StrategySettings
    assert resource.model_dump() == pure.model_dump()
    assert resource.strategy() == pure and type(resource.strategy()) is Strategy
    assert resource.history_sessions == pure.history_sessions


def test_the_resource_declares_no_field_of_its_own():
    assert list(StrategySettings.model_fields) == list(Strategy.model_fields)
    for name, info in Strategy.model_fields.items():
        theirs = StrategySettings.model_fields[name]
        assert (theirs.default, theirs.description, theirs.metadata, theirs.annotation) == (
            info.default,
            info.description,
            info.metadata,
            info.annotation,
        ), name


def test_the_launchpad_schema_is_the_pure_models_fields():
    """What a user sees under ``resources: strategy: config:``: every field, its default and its
    description, read from the pure model."""
    schema = StrategySettings.to_config_schema().as_field().config_type.fields
    assert sorted(schema) == sorted(Strategy.model_fields)
    for name, info in Strategy.model_fields.items():
        field = schema[name]
        assert not field.is_required, name
        assert field.description == info.description, name
        assert field.default_value == info.default, name


def test_the_default_strategy_is_the_defaults():
    assert DEFAULT_STRATEGY == Strategy() == Strategy.preset("default") == Strategy.preset("trading_period")
    assert Strategy.preset("seed", correlation_min=0.9).correlation_min == 0.9


def test_the_quant_layers_defaults_are_read_from_the_model():
    d = DEFAULT_STRATEGY
    assert (
        features.DEFAULT_FORMATION_WINDOW,
        features.DEFAULT_ENTRY_Z,
        features.DEFAULT_EXIT_Z,
        features.DEFAULT_STOP_Z,
        features.DEFAULT_HORIZON,
    ) == (d.formation_window, d.entry_z, d.exit_z, d.stop_z, d.gru_horizon)
    assert gru_pairs.DEFAULT_MIN_SEQUENCES == d.gru_min_sequences
    limits = signals.RiskLimits()
    assert (limits.max_portfolio_risk, limits.max_position) == (d.max_portfolio_risk, d.max_position)
    assert limits.target_daily_vol == Strategy.preset("seed").target_daily_vol
    score = inspect.signature(scoring.score_models).parameters
    assert (list(score["weights"].default), score["diag_alpha"].default, score["aic_scale"].default) == (
        d.score_weights,
        d.diagnostics_alpha,
        d.aic_scale,
    )
    assert score["threshold"].default == Strategy.preset("seed").score_min
    flat = inspect.signature(prices.find_unusable_symbols).parameters["max_flat_fraction"]
    assert flat.default == d.max_flat_fraction


def test_the_gru_configs_defaults_are_the_strategys():
    from pairs_assets.quant.gru import GRUConfig
    from pairs_assets.quant.stages import gru_config

    assert gru_config(DEFAULT_STRATEGY) == GRUConfig()


def test_no_literal_default_is_repeated_in_the_quant_layer():
    """The modules that used to restate the strategy's defaults now read them from the model."""
    for path, names in {
        "features.py": (
            "DEFAULT_FORMATION_WINDOW",
            "DEFAULT_ENTRY_Z",
            "DEFAULT_EXIT_Z",
            "DEFAULT_STOP_Z",
            "DEFAULT_HORIZON",
        ),
        "gru/pairs.py": ("DEFAULT_MIN_SEQUENCES",),
    }.items():
        tree = ast.parse((QUANT / path).read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and node.targets[0].id in names:
                assert not isinstance(node.value, ast.Constant), f"{path}: {node.targets[0].id} restates a default"


def test_no_strategy_parameter_in_the_quant_layer_is_untyped_or_any():
    offenders = []
    for path in sorted(QUANT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
                if arg.arg in {"strategy", "levels"}:
                    annotation = ast.unparse(arg.annotation) if arg.annotation else None
                    if annotation is None or "Any" in annotation:
                        offenders.append(
                            f"{path.relative_to(QUANT)}:{node.lineno} {node.name}({arg.arg}: {annotation})"
                        )
    assert offenders == []


# --- validators: one line naming the field ----------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"formation_window": 5}, "strategy setting formation_window = 5: Input should be greater than or equal to 20"),
        ({"correlation_min": 1.5}, "strategy setting correlation_min = 1.5: Input should be less than or equal to 1"),
        ({"eg_pvalue_max": 0.0}, "strategy setting eg_pvalue_max = 0.0: Input should be greater than 0"),
        ({"garch_window": 499}, "strategy setting garch_window = 499: Input should be greater than or equal to 500"),
        ({"aic_scale": "daily"}, "strategy setting aic_scale = 'daily': Input should be 'per_observation' or 'total'"),
        ({"gru_dropout": 1.0}, "strategy setting gru_dropout = 1.0: Input should be less than 1"),
        ({"reselect_every": 0}, "strategy setting reselect_every = 0: Input should be greater than or equal to 1"),
        (
            {"entry_z": "two"},
            "strategy setting entry_z = 'two': Input should be a valid number, unable to parse string as a number",
        ),
        ({"formation_windw": 60}, "strategy setting formation_windw = 60: Extra inputs are not permitted"),
        ({"exit_z": 2.5}, "strategy settings: need exit_z < entry_z < stop_z, got 2.5, 2.0, 3.5"),
        ({"stop_z": 1.5}, "strategy settings: need exit_z < entry_z < stop_z, got 0.5, 2.0, 1.5"),
        (
            {"score_weights": [0.5, 0.5]},
            "strategy settings: score_weights must be four weights summing to 1, got [0.5, 0.5]",
        ),
        (
            {"gru_val_frac": 0.5, "gru_test_frac": 0.5},
            "strategy settings: gru_val_frac + gru_test_frac must be below 1, got 0.5 + 0.5",
        ),
        (
            {"garch_holdout": 400},
            "strategy settings: garch_holdout must be at most half of garch_window, got 400 of 750",
        ),
    ],
)
def test_a_bad_setting_is_refused_in_one_line_naming_the_field(params, expected):
    with pytest.raises(StrategyError) as caught:
        Strategy.parse(params)
    message = str(caught.value)
    assert message == expected
    assert "\n" not in message
    if "Extra inputs" in expected or "valid number" in expected:
        return  # the resource checks keys and types against its config schema when a run launches
    with pytest.raises(ValueError, match=next(iter(params))):  # the resource refuses it too
        StrategySettings(**params)


def test_an_unknown_preset_is_refused_naming_the_known_ones():
    with pytest.raises(StrategyError, match=r"unknown strategy preset 'sed' \(known: default, seed, trading_period\)"):
        Strategy.preset("sed")
    with pytest.raises(StrategyError, match="unknown strategy preset 'sed'"):
        StrategySettings.preset("sed")


def test_the_model_is_immutable():
    with pytest.raises(ValueError, match="frozen"):
        DEFAULT_STRATEGY.entry_z = 1.0  # type: ignore[misc]


# --- derived windows -------------------------------------------------------------------------------


def test_the_windows_each_stage_reads():
    d = DEFAULT_STRATEGY  # 252 formation, causal β, backtest before the formation, 21-session period
    assert d.garch_sessions == 750 + 1 + 252
    assert d.backtest_sessions == 60 + 252 + 252
    assert d.stage_windows == {
        "correlation_matrix": 252,
        "cointegrated_pairs": 252,
        "garch_models": 1003,
        "model_selection": 564,
        "gru_models": 1300,
    }
    assert d.reach(252) == 252 + 20
    assert d.history_sessions == 1300 + 20
    seed = Strategy.preset("seed")  # 60 formation, no causal β, backtest on the formation, daily
    assert (seed.garch_sessions, seed.backtest_sessions, seed.reach(60)) == (1001, 120, 60)
    assert seed.history_sessions == 1300
    short = Strategy.preset("seed", gru_window=200)
    assert short.history_sessions == 1001  # the GARCH window is the longest now
    assert set(STAGE_WINDOWS) == set(d.stage_windows)


def test_the_pure_model_pickles_for_the_walk_forwards_workers():
    strategy = StrategySettings.preset("seed").strategy()
    assert pickle.loads(pickle.dumps(strategy)) == strategy


def test_the_clis_preset_and_overrides_are_the_models():
    from pairs_assets import cli

    config = cli.strategy_overrides("seed", ["entry_z=2.2", "fdr_alpha=0.1", "aic_scale=per_observation"])
    assert config == {**PRESETS["seed"], "entry_z": 2.2, "fdr_alpha": 0.1, "aic_scale": "per_observation"}
    assert Strategy.parse(config) == Strategy.preset("seed", entry_z=2.2, fdr_alpha=0.1, aic_scale="per_observation")
    choices = {p.name: p.type.choices for p in cli.walk_forward_command.params if p.name == "preset"}
    assert list(choices["preset"]) == sorted(PRESETS)


def test_the_walk_forwards_workers_replay_the_pure_model_as_one_process_does():
    """``run_walk_forward`` unwraps a resource into the pure model, which its worker processes get as
    is: two sectors on two workers give what one process gives."""
    import pandas as pd

    from pairs_assets import partitions
    from pairs_assets.quant.walkforward.engine import WalkForwardSettings, run_walk_forward
    from pairs_assets.quant.walkforward.replay import SectorPanel
    from pairs_assets_tests.planted import planted_closes

    closes = planted_closes(n_sessions=1160, phi=0.3)[["AAPL", "AMD", "MSFT"]]
    panels = {s: SectorPanel(sector=s, closes=closes, source="planted") for s in ("technology", "utilities")}
    symbols = {s: ["AAPL", "AMD", "MSFT"] for s in panels}
    results = {}
    for workers in (1, 2):
        settings = WalkForwardSettings(
            start="2022-12-01",
            end="2022-12-28",
            costs=[5],
            periods=[],
            bootstrap_resamples=50,
            workers=workers,
            n_trials=1,
        )
        results[workers] = run_walk_forward(
            panels, symbols, partitions.next_session, StrategySettings.preset("seed"), settings
        )
    pd.testing.assert_frame_equal(results[1].summary, results[2].summary)
    assert (results[2].summary["trades"] > 0).any()
