"""A strategy other than today's, from a third-party package installed for real, runs through the
daily graph under its own asset key prefix and walks forward through the one rule (issue 19).

The package (``pairs_example_strategy``, beside this file, its own ``pyproject.toml``) registers
``example_corr`` in the entry-point group ``pairs_assets.strategies``; no line of the project names it.
"""

from __future__ import annotations

import importlib.metadata
import json

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pairs_assets import partitions
from pairs_assets.assets.common import GROUP, read_panel
from pairs_assets.assets.strategy_assets import plugin_assets, plugin_resources
from pairs_assets.definitions import build_definitions
from pairs_assets.partitions import partition_key
from pairs_assets.quant.config_model import TradingConfig
from pairs_assets.quant.walkforward.engine import WalkForwardSettings
from pairs_assets.quant.walkforward.replay import SectorPanel
from pairs_assets.settings import EMBEDDED_BARS_FILE
from pairs_assets.strategies.base import SectorContext
from pairs_assets.strategies.periodic import PeriodicStrategy, trading_config_path
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY, daily_asset, preload_history, resources_for
from resources.bar_sources import EmbeddedBarSource
from resources.market_data import MarketDataStore

NAME = "example_corr"
TECHNOLOGY = ["AAPL", "AMD", "MSFT"]
PARAMS = {"formation": 60, "every": 5, "max_pairs": 2}


@pytest.fixture(scope="module")
def plugin_class(example_plugin_installed):
    (entry,) = [e for e in importlib.metadata.entry_points(group="pairs_assets.strategies") if e.name == NAME]
    return entry.load()


@pytest.fixture(scope="module")
def plugin(plugin_class):
    return plugin_class(NAME, PARAMS)


def context(panel: SectorPanel, start, end, costs=(0.0,)) -> SectorContext:
    index = panel.closes.index
    sessions = index[(index >= pd.Timestamp(start)) & (index <= pd.Timestamp(end))]
    first = index.get_loc(sessions[0])
    return SectorContext(
        panel=panel,
        symbols=tuple(panel.closes.columns),
        sessions=sessions,
        as_of=index[first - 1 : index.get_loc(sessions[-1])],
        effective=list(sessions),
        settings=WalkForwardSettings(costs=list(costs), lag=1, start=str(sessions[0].date()), end=str(end)),
        next_session=partitions.next_session,
    )


def test_the_entry_point_finds_the_installed_plugin_class(plugin_class, example_plugin_installed):
    assert issubclass(plugin_class, PeriodicStrategy)
    assert plugin_class.__module__ == "pairs_example_strategy"
    assert str(example_plugin_installed) in importlib.metadata.distribution("pairs-example-strategy")._path.as_posix()
    assert plugin_class(NAME).params.entry_z == 2.0 and plugin_class(NAME).params.stop_z == 4.0


def test_its_assets_sit_in_the_daily_graph_under_its_prefix_with_raw_bars_upstream(plugin, own_pairs_home):
    # the project's definitions of a home, and the plugin's assets and resource beside them
    project = build_definitions(own_pairs_home)
    daily = project.resolve_assets_def("raw_bars").partitions_def
    defs = dg.Definitions.merge(
        project, dg.Definitions(assets=plugin_assets(plugin, daily), resources=plugin_resources(plugin))
    )
    graph = defs.resolve_asset_graph()
    selected, config = dg.AssetKey([NAME, "selected_pairs"]), dg.AssetKey([NAME, "trading_config"])
    assert graph.get(selected).parent_keys == {dg.AssetKey("raw_bars")}
    assert graph.get(config).parent_keys == {dg.AssetKey("raw_bars"), selected}
    assert graph.get(selected).group_name == graph.get(config).group_name == GROUP
    # the daily job (the UI's backfills of the group too) includes them
    job = defs.resolve_job_def("daily_pairs")
    assert {selected, config, dg.AssetKey("trading_config")} <= set(job.asset_layer.selected_asset_keys)
    # its params resource: the launchpad shows them as JSON
    (resource,) = plugin_resources(plugin).values()
    assert json.loads(resource.params_json)["formation"] == 60 and resource.strategy == NAME
    assert resource.params() == plugin.params
    metadata = graph.get(selected).metadata
    assert metadata["pairs/history_sessions"] == 60 + 5 - 1


def _materialize(plugin, resources, instance, **kwargs):
    assets = [daily_asset("raw_bars"), *plugin_assets(plugin, EMBEDDED_DAILY)]
    return dg.materialize(
        assets,
        selection=[f"{NAME}/selected_pairs", f"{NAME}/trading_config"],
        resources={**resources, **plugin_resources(plugin)},
        instance=instance,
        **kwargs,
    )


@pytest.fixture()
def technology_store(tmp_path, own_pairs_home):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    source = EmbeddedBarSource()
    preload_history(url, source, TECHNOLOGY, "2022-12-29", 60 + 5 + 12)
    return url, source, resources_for(url, source, home=own_pairs_home)


def _walk_forward_configs(plugin, url, source, start, end) -> dict:
    """The walk-forward's configs over the store's own closes (the panel's row hashes give the
    same input fingerprints as the daily graph's window reads)."""
    sessions = partitions.sessions_in_range(pd.Timestamp(start) - pd.Timedelta(days=100), partitions.next_session(end))
    panel = read_panel(MarketDataStore(database_url=url), source.source_name, "technology", TECHNOLOGY, sessions)
    return plugin.configs(context(panel, partitions.next_session(start), partitions.next_session(end)))


def test_one_partition_writes_its_config_and_the_store_row_under_its_name(plugin, technology_store, own_pairs_home):
    url, source, resources = technology_store
    result = _materialize(
        plugin, resources, dg.DagsterInstance.ephemeral(), partition_key=partition_key("2022-12-28", "technology")
    )
    assert result.success
    path = trading_config_path(own_pairs_home.outputs_dir, NAME, "2022-12-28", "technology")
    written = TradingConfig.parse(path.read_bytes())
    assert written.sector == "technology" and 1 <= len(written.pairs) <= 2
    assert not (own_pairs_home.outputs_dir / "trading_config").exists()  # the default strategy's folder untouched
    store = MarketDataStore(database_url=url)
    record = store.latest_trading_config_record("technology", "2022-12-28", strategy=NAME)
    assert record is not None and record.path == str(path) and record.strategy == NAME
    assert store.latest_trading_config_record("technology", "2022-12-28") is None  # not the default strategy's
    assert json.loads(record.text) == written.document()
    selected = pd.read_parquet(
        own_pairs_home.outputs_dir / NAME / "selected_pairs" / "2022-12-28" / "technology.parquet"
    )
    assert list(selected["pair_id"]) == [p.pair_id for p in written.pairs]
    # the walk-forward's config of the same (as-of, sector) is the same, field for field
    configs = _walk_forward_configs(plugin, url, source, "2022-12-28", "2022-12-28")
    assert configs[pd.Timestamp("2022-12-28")].document() == written.document()


def test_a_range_run_and_the_walk_forward_give_equal_configs(plugin, technology_store, own_pairs_home):
    url, source, resources = technology_store
    result = _materialize(
        plugin,
        resources,
        dg.DagsterInstance.ephemeral(),
        tags={
            ASSET_PARTITION_RANGE_START_TAG: "2022-12-15|technology",
            ASSET_PARTITION_RANGE_END_TAG: "2022-12-28|technology",
        },
    )
    assert result.success
    configs = _walk_forward_configs(plugin, url, source, "2022-12-15", "2022-12-28")
    assert len(configs) == 9  # 2022-12-15 … 2022-12-28 (26th a holiday)
    written = sorted(
        p.parent.name for p in (own_pairs_home.outputs_dir / NAME / "trading_config").glob("*/technology.json")
    )
    assert written == [str(d.date()) for d in sorted(configs)]
    formations = {c.formation_session or c.as_of_session for c in configs.values()}
    assert len(formations) >= 2  # the range spans formation sessions (every 5)
    for as_of, config in configs.items():
        path = trading_config_path(own_pairs_home.outputs_dir, NAME, str(as_of.date()), "technology")
        assert TradingConfig.parse(path.read_bytes()).document() == config.document(), as_of


def test_it_walks_forward_through_the_one_rule(plugin):
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", *TECHNOLOGY])
    panel = SectorPanel("technology", closes.loc["2019-06-01":"2021-12-31"], "embedded")
    ctx = context(panel, "2020-03-02", "2021-06-30", costs=(0.0, 5.0))
    result = plugin.walk_forward_sector(ctx)
    daily, trades = result.executions[NAME][5.0]
    assert len(trades) >= 5 and set(trades["strategy"]) == {NAME} and set(trades["sector"]) == {"technology"}
    assert daily.index[0] == ctx.sessions[0] and daily.index[-1] == ctx.sessions[-1]
    configs = plugin.configs(ctx)
    assert result.configs == len(configs) == len(ctx.sessions)
    by_effective = {pd.Timestamp(c.effective_session): c for c in configs.values()}
    for trade in trades.itertuples():
        # every entry: a pair of the config in force, at |z| >= its entry level (the rule's decision)
        config = by_effective[pd.Timestamp(trade.entry_session)]
        assert trade.pair_id in {p.pair_id for p in config.pairs}
        assert abs(trade.z_entry) >= 2.0
        assert trade.exit_reason in ("exit", "stop", "max_holding", "range_end", "config_drop")
    # the costs differ, the decisions do not
    assert result.executions[NAME][0.0][1]["pair_id"].tolist() == trades["pair_id"].tolist()
    assert result.executions[NAME][0.0][0]["pnl"].sum() > daily["pnl"].sum()


def test_the_signal_job_trades_its_config_under_its_name(plugin, technology_store, own_pairs_home):
    """The live path per strategy: the signal job run for ``example_corr`` reads the config its daily
    stage recorded and writes signal rows (and orders) tagged with its name."""
    from pairs_assets.settings import StrategySettings
    from pairs_assets_tests.assets.graph_harness import TRADING_SIGNALS
    from pairs_assets_tests.live import signal_setup as setup
    from resources.broker import BrokerResource
    from resources.market_data import orders_table, trading_signals_table

    url, _source, resources = technology_store
    partition = partition_key("2022-12-28", "technology")
    instance = dg.DagsterInstance.ephemeral()
    assert _materialize(plugin, resources, instance, partition_key=partition).success
    store = MarketDataStore(database_url=url)
    config = TradingConfig.parse(
        trading_config_path(own_pairs_home.outputs_dir, NAME, "2022-12-28", "technology").read_bytes()
    )
    first = config.pairs[0]
    bar = "2022-12-29T15:00:00Z"
    # every symbol at its last close, the first pair's y moved to z = 2.6 (plausible bars: the jump
    # rule refuses a bar far from the last close)
    history = store.read_bars(TECHNOLOGY, pd.Timestamp("2022-12-20", tz="UTC"), pd.Timestamp("2022-12-29", tz="UTC"))
    last = history.sort_values("timestamp").groupby("symbol")["close"].last()
    x_price = float(last[first.x])
    bars = {first.x: x_price, first.y: setup.price_for_z(first, x_price, 2.6)}
    bars.update({s: float(last[s]) for s in TECHNOLOGY if s not in bars})
    store.upsert_bars(pd.DataFrame([setup.live_bar(s, bar, p) for s, p in bars.items()]), context="live")
    result = dg.materialize(
        [setup.stand_in_trading_config, TRADING_SIGNALS],
        selection=["trading_signals"],
        partition_key=partition,
        instance=instance,
        resources={
            "store": store,
            "bar_source": EmbeddedBarSource(),
            # the example's spreads are wide (z 2.6 is a ~22% move of y): a jump floor above it
            "strategy": StrategySettings.preset("seed", jump_min_abs_log_return=0.5),
            "model_registry": setup.TinyModels(),
            "broker": BrokerResource(),
        },
        run_config={
            "ops": {
                "trading_signals": {
                    "config": {
                        "bar_cutoff": bar,
                        "strategy": NAME,
                        "on_drop": plugin.on_drop,
                        "max_holding": plugin.max_holding,
                        "history_sessions": 60,
                        # one 22% bar moves the live correlation off the config's: trade through the drift flag
                        "trade_on_drift": True,
                    }
                }
            }
        },
    )
    assert result.success
    signals = store.read_table(trading_signals_table)
    assert set(signals["strategy"]) == {NAME} and set(signals["pair_id"]) == {p.pair_id for p in config.pairs}
    row = signals.set_index("pair_id").loc[first.pair_id]
    assert row["action"] == "short_spread", str(row.to_dict())
    orders = store.read_table(orders_table)
    # the moved y may open its other pairs too; every order is the plugin's
    assert set(orders["strategy"]) == {NAME} and first.pair_id in set(orders["pair_id"])


ASSET_NODES = """
query AssetNodes {
  assetNodes { assetKey { path } groupName dependencyKeys { path } }
}
"""


def test_the_ui_draws_its_assets_with_raw_bars_upstream(plugin_class, own_pairs_home):
    """The webserver's GraphQL (what the UI's asset graph reads) over a code location that adds the
    installed plugin's assets to the project's definitions."""
    import tempfile
    from pathlib import Path

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    p = own_pairs_home
    source = (
        "import dagster as dg\n"
        "from pathlib import Path\n"
        "from pairs_example_strategy import CorrelationBands\n"
        "from pairs_assets.assets.strategy_assets import plugin_assets, plugin_resources\n"
        "from pairs_assets.definitions import build_definitions\n"
        "from pairs_assets.settings import Paths\n\n"
        f"project = build_definitions(Paths(home=Path({str(p.home)!r}), database_url={p.database_url!r}, "
        f"bars_file=None, universe_file=Path({str(p.universe_file)!r}), history_start={p.history_start!r}, "
        f"mlflow_tracking_uri={p.mlflow_tracking_uri!r}))\n"
        f"plugin = CorrelationBands({NAME!r}, {PARAMS!r})\n"
        "daily = project.resolve_assets_def('raw_bars').partitions_def\n"
        "defs = dg.Definitions.merge(project, dg.Definitions(assets=plugin_assets(plugin, daily), "
        "resources=plugin_resources(plugin)))\n"
    )
    with tempfile.TemporaryDirectory(prefix="plugin_location_") as folder:
        location = Path(folder) / "location.py"
        location.write_text(source)
        origin = InProcessCodeLocationOrigin(
            LoadableTargetOrigin(python_file=str(location), attribute="defs", working_directory=folder),
            location_name="pairs_with_plugin",
        )
        with dg.instance_for_test() as instance:
            with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin)) as context:
                request = context.create_request_context()
                entry = request.get_code_location_entries()["pairs_with_plugin"]
                assert entry.load_error is None, entry.load_error
                result = execute_dagster_graphql(request, ASSET_NODES)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in result.data["assetNodes"]}
    deps = {key: {"/".join(d["path"]) for d in n["dependencyKeys"]} for key, n in nodes.items()}
    assert deps[f"{NAME}/selected_pairs"] == {"raw_bars"}
    assert deps[f"{NAME}/trading_config"] == {"raw_bars", f"{NAME}/selected_pairs"}
    assert nodes[f"{NAME}/trading_config"]["groupName"] == nodes["trading_config"]["groupName"] == GROUP
