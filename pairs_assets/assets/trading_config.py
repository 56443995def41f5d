"""trading_config: what the trading side reads for the session after the as-of session.

Written as canonical JSON (sorted keys, no wall-clock field: the same inputs give a byte-identical
file) to ``<PAIRS_HOME>/trading_config/<date>/<sector>.json`` and as a row of the store's
``trading_configs`` table.
"""


import math
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from pairs_assets import partitions
from pairs_assets.assets.common import GROUP, fingerprint_of, markdown_table, partition_parts, read_window, stopwatch, universe
from pairs_assets.quant.cointegration import spread
from pairs_assets.quant.sizing import pair_sizing
from pairs_assets.settings import DEFAULT_STRATEGY, StrategySettings, paths
from resources.bar_sources import BarSource
from resources.io_manager import atomic_write_bytes, canonical_json, partition_path
from resources.market_data import MarketDataStore

SCHEMA_VERSION = 1


def _clean(value):
    """JSON-safe scalars: numpy → Python, NaN/inf → None (JSON has no NaN)."""
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, pd.Timestamp):
        return str(value.date())
    return value


def build_document(
    *,
    as_of: str,
    sector: str,
    source: str,
    symbols: tuple[str, ...],
    pairs: pd.DataFrame,
    garch: pd.DataFrame,
    scores: pd.DataFrame,
    models: pd.DataFrame | None,
    formation_closes: pd.DataFrame,
    strategy: StrategySettings,
    fingerprint: str,
) -> dict:
    """The trading config document (schema_version 1) for the selected pairs, best rank first."""
    selected = scores[scores["selected"]].sort_values("rank") if not scores.empty else scores
    merged = selected.merge(pairs, on="pair_id").merge(garch, on="pair_id", suffixes=("", "_garch"))
    if models is not None and not models.empty:
        merged = merged.merge(models, on="pair_id", how="left", suffixes=("", "_gru"))
    entries = []
    for row in merged.itertuples():
        pair_spread = spread(formation_closes[row.y], formation_closes[row.x], row.hedge_ratio, row.intercept)
        sizing = pair_sizing(
            sigma_forecast=row.sigma_forecast,
            hedge_ratio=row.hedge_ratio,
            target_daily_vol=strategy.target_daily_vol,
            max_position=strategy.max_position,
            max_portfolio_risk=strategy.max_portfolio_risk,
            n_pairs=len(merged),
        )
        model, model_note = None, "no GRU stage in this run"
        if models is not None:
            status = getattr(row, "status", None)
            if status == "trained":
                model_note = "trained"
                model = {
                    "name": row.model_name,
                    "version": str(row.model_version),
                    "mlflow_run_id": row.mlflow_run_id,
                    "probability_threshold": _clean(row.probability_threshold),
                    "beats_baselines": bool(row.beats_baselines),
                    "test_f1": _clean(row.test_f1),
                    "best_baseline_f1": _clean(row.best_baseline_f1),
                    # the GARCH parameters behind the GRU's σ / residual features (fitted before its test
                    # slice); the signal job filters the live spread with these, as in training
                    "feature_garch": {k: _clean(getattr(row, f"feature_garch_{k}")) for k in ["mu", "omega", "alpha", "beta"]},
                }
            else:
                model_note = f"no model: {getattr(row, 'reason', None) or 'not trained'}"
        entries.append(
            {
                "pair_id": row.pair_id,
                "y": row.y,
                "x": row.x,
                "hedge_ratio": _clean(row.hedge_ratio),
                "intercept": _clean(row.intercept),
                "spread_mean": _clean(pair_spread.mean()),
                "spread_std": _clean(pair_spread.std(ddof=1)),
                "half_life": _clean(row.half_life),
                "correlation": _clean(row.correlation),
                "eg_pvalue": _clean(row.eg_pvalue),
                "garch": {
                    k: _clean(getattr(row, k))
                    for k in ["mu", "omega", "alpha", "beta", "persistence", "sigma_forecast", "unconditional_sigma"]
                },
                "levels": {"entry_z": strategy.entry_z, "exit_z": strategy.exit_z, "stop_z": strategy.stop_z},
                "sizing": {k: _clean(v) for k, v in sizing.items()},
                "scores": {
                    k: _clean(getattr(row, k))
                    for k in ["aic_score", "forecast_score", "backtest_score", "diagnostic_score", "composite", "rank"]
                },
                "model": model,
                "model_note": model_note,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "as_of_session": as_of,
        "effective_session": str(partitions.next_session(as_of).date()),
        "sector": sector,
        "source": source,
        "symbols": list(symbols),
        "input_fingerprint": fingerprint,
        "thresholds": {
            "correlation_min": strategy.correlation_min,
            "eg_pvalue_max": strategy.eg_pvalue_max,
            "score_min": strategy.score_min,
        },
        "windows": {
            "formation": strategy.formation_window,
            "garch": strategy.garch_window,
            "backtest": strategy.backtest_window,
            "gru": strategy.gru_window,
        },
        "risk": {
            "max_portfolio_risk": strategy.max_portfolio_risk,
            "max_position": strategy.max_position,
            "target_daily_vol": strategy.target_daily_vol,
        },
        "pairs": entries,
    }


def trading_config_path(as_of: str, sector: str) -> str:
    return str(partition_path(paths().outputs_dir, "trading_config", f"{as_of}|{sector}", ".json"))


@dg.asset(
    partitions_def=partitions.daily_partitions_def(),
    ins={
        "cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        "garch_models": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        "model_selection": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        "gru_models": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
    },
    deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.lookback_mapping(DEFAULT_STRATEGY.formation_window))],
    group_name=GROUP,
    kinds={"json"},
    description="The selected pairs for the next session: legs, hedge ratio, spread mean/σ, GARCH "
    "parameters and σ forecast, entry/exit/stop z, sizing inputs, scores, input fingerprint.",
)
def trading_config(
    context: dg.AssetExecutionContext,
    cointegrated_pairs: pd.DataFrame,
    garch_models: pd.DataFrame,
    model_selection: pd.DataFrame,
    gru_models: pd.DataFrame,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
) -> dg.MaterializeResult:
    date, sector = partition_parts(context)
    symbols = universe().symbols(sector)
    with stopwatch() as timer:
        formation = read_window(
            store, bar_source.source_name, symbols, date, strategy.formation_window, partition=context.partition_key
        )
        legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"])) if len(cointegrated_pairs) else []
        history = (
            read_window(store, bar_source.source_name, legs, date, strategy.history_sessions, partition=context.partition_key)
            if legs
            else formation
        )
        fingerprint = fingerprint_of(
            formation.fingerprint, history.fingerprint, bar_source.source_name, strategy.model_dump(mode="json")
        )
        document = build_document(
            as_of=date,
            sector=sector,
            source=bar_source.source_name,
            symbols=symbols,
            pairs=cointegrated_pairs,
            garch=garch_models,
            scores=model_selection,
            models=gru_models,
            formation_closes=formation.closes,
            strategy=strategy,
            fingerprint=fingerprint,
        )
        path = trading_config_path(date, sector)
        atomic_write_bytes(Path(path), canonical_json(document))
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
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(path),
            "as_of_session": date,
            "effective_session": document["effective_session"],
            "pairs": len(document["pairs"]),
            "note": "no pair selected: trade nothing in this sector" if not document["pairs"] else f"{len(document['pairs'])} pair(s) to trade",
            "selected_pairs": markdown_table(table),
            "input_fingerprint": fingerprint,
            "schema_version": SCHEMA_VERSION,
            "document": dg.MetadataValue.json(document),
            "elapsed_seconds": timer["seconds"],
        }
    )
