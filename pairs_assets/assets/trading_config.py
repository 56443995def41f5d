"""trading_config: what the trading side reads for the session after the as-of session.

Written as canonical JSON (sorted keys, no wall-clock field: the same inputs give a byte-identical
file) to ``<PAIRS_HOME>/trading_config/<date>/<sector>.json`` and as a row of the store's
``trading_configs`` table.
"""

from pathlib import Path

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.assets import ranges
from pairs_assets.assets.common import (
    GROUP,
    WindowReader,
    fingerprint_of,
    history_window_metadata,
    markdown_table,
    partition_parts,
    stopwatch,
)
from pairs_assets.home import PairsHome
from pairs_assets.quant.config_model import SCHEMA_VERSION
from pairs_assets.quant.stages import build_trading_config, sigma_forecasts_at
from pairs_assets.settings import StrategySettings
from resources.bar_sources import BarSource
from resources.io_manager import atomic_write_bytes
from resources.market_data import MarketDataStore


def trading_config_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions. It depends on its own session's ``raw_bars`` partition and
    reads its windows (``strategy``'s ``formation_window`` and ``history_sessions``) from the store (see ``common.history_window_metadata``)."""
    return dg.asset(
        name="trading_config",
        partitions_def=daily,
        ins={
            "cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
            "garch_models": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
            "model_selection": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
            "gru_models": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        },
        deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.same_partition_mapping())],
        metadata=history_window_metadata(
            strategy.history_sessions,
            f"the formation window ({strategy.formation_window} sessions ending at its formation session) and its pairs' "
            f"history_sessions ({strategy.history_sessions}) ending at its as-of session",
        ),
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"json"},
        description="The selected pairs for the next session: legs, hedge ratio, spread mean/σ, GARCH "
        "parameters and σ forecast, entry/exit/stop z, sizing inputs, scores, input fingerprint.",
    )(trading_config)


def trading_config(
    context: dg.AssetExecutionContext,
    cointegrated_pairs,
    garch_models,
    model_selection,
    gru_models,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    home: PairsHome,
) -> dg.MaterializeResult:
    if not context.has_partition_key:  # a range run (single-run backfill), see assets/ranges.py
        with stopwatch() as timer:
            sector_ranges = ranges.sector_ranges(
                context,
                store,
                bar_source.source_name,
                strategy,
                home,
                lookback=strategy.history_sessions,
                longest_window_ends_at_as_of=True,
            )
            n_pairs = 0
            partition_meta: dict[str, dict] = {}
            for rng in sector_ranges:
                for session in rng.sessions:
                    key = rng.key(session)
                    document, _path, meta = config_partition(
                        rng.windows,
                        str(session.date()),
                        rng.sector,
                        cointegrated_pairs[key],
                        garch_models[key],
                        model_selection[key],
                        gru_models[key],
                        store,
                        bar_source.source_name,
                        strategy,
                    )
                    n_pairs += len(document["pairs"])
                    partition_meta[key] = meta
            ranges.record_partition_metadata(context, partition_meta)
        return dg.MaterializeResult(
            metadata=ranges.range_metadata(
                sector_ranges,
                timer["seconds"],
                pairs=n_pairs,
                schema_version=SCHEMA_VERSION,
                path=dg.MetadataValue.path(str(Path(home.outputs_dir) / "trading_config")),
            )
        )
    date, sector = partition_parts(context)
    with stopwatch() as timer:
        _document, _path, metadata = config_partition(
            WindowReader(store, bar_source.source_name, home=home),
            date,
            sector,
            cointegrated_pairs,
            garch_models,
            model_selection,
            gru_models,
            store,
            bar_source.source_name,
            strategy,
        )
    return dg.MaterializeResult(metadata={**metadata, "elapsed_seconds": timer["seconds"]})


def config_partition(
    windows: WindowReader,
    date: str,
    sector: str,
    cointegrated_pairs: pd.DataFrame,
    garch_models: pd.DataFrame,
    model_selection: pd.DataFrame,
    gru_models: pd.DataFrame,
    store: MarketDataStore,
    source: str,
    strategy: StrategySettings,
) -> tuple[dict, str, dict]:
    """One partition's config, written (JSON file + store row): (document, path, metadata)."""
    symbols = windows.universe.symbols(sector)
    key = f"{date}|{sector}"
    formation_day = windows.formation_session(date, strategy.reselect_every, strategy.formation_phase)
    formation = windows.read(symbols, formation_day, strategy.formation_window, partition=key)
    legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"])) if len(cointegrated_pairs) else []
    history = windows.read(legs, date, strategy.history_sessions, partition=key) if legs else formation
    fingerprint = fingerprint_of(formation.fingerprint, history.fingerprint, source, strategy.model_dump(mode="json"))
    if legs and formation_day < pd.Timestamp(date):
        # later in the trading period: the formation's GARCH σ filtered forward to this as-of session
        ahead = len(partitions.sessions_in_range(formation_day, date)) - 1
        garch_models = garch_models.assign(
            sigma_forecast=garch_models["pair_id"].map(
                sigma_forecasts_at(
                    history.closes.iloc[-(strategy.garch_window + 1 + ahead) :], cointegrated_pairs, garch_models
                )
            )
        )
    config = build_trading_config(
        as_of=date,
        effective_session=str(partitions.next_session(date).date()),
        formation_session=str(formation_day.date()),
        sector=sector,
        source=source,
        symbols=symbols,
        pairs=cointegrated_pairs,
        garch=garch_models,
        scores=model_selection,
        models=gru_models,
        formation_closes=formation.closes,
        strategy=strategy,
        fingerprint=fingerprint,
    )
    document = config.document()
    path = str(windows.home.trading_config_path(date, sector))
    atomic_write_bytes(Path(path), config.to_json_bytes())
    store.write_trading_config(document, path)
    table = pd.DataFrame(
        [
            {
                "pair_id": p["pair_id"],
                "hedge_ratio": p["hedge_ratio"],
                "sigma_forecast": p["garch"]["sigma_forecast"],
                "composite": p["scores"]["composite"],
                "gross_fraction": p["sizing"]["gross_fraction"],
                "model_version": (p["model"] or {}).get("version", "—"),
                "beats_baselines": (p["model"] or {}).get("beats_baselines", "—"),
            }
            for p in document["pairs"]
        ]
    )
    metadata = {
        "path": dg.MetadataValue.path(path),
        "as_of_session": date,
        "effective_session": document["effective_session"],
        "pairs": len(document["pairs"]),
        "note": "no pair selected: trade nothing in this sector"
        if not document["pairs"]
        else f"{len(document['pairs'])} pair(s) to trade",
        "selected_pairs": markdown_table(table),
        "window": formation.label,
        "history_window": history.label,
        "input_fingerprint": fingerprint,
        "schema_version": SCHEMA_VERSION,
        "document": dg.MetadataValue.json(document),
    }
    return document, path, metadata
