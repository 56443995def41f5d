"""gru_models: a GRU per selected pair predicting spread reversion, tracked and registered in MLflow."""

from types import SimpleNamespace

import dagster as dg
import pandas as pd

from pairs_assets import partitions
from pairs_assets.assets import ranges
from pairs_assets.assets.common import GROUP, WindowReader, fingerprint_of, markdown_table, partition_parts, stopwatch
from pairs_assets.home import PairsHome
from pairs_assets.quant.features import GRUTrainingError
from pairs_assets.quant.stages import gru_config, gru_stage_fit, pair_spread
from pairs_assets.settings import StrategySettings
from resources.bar_sources import BarSource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import MarketDataStore, model_performance_table
from pairs_assets.util import redact_url
from resources.model_registry import ModelRegistry

BASELINES = ("majority", "logistic", "z_rule")
GRU_COLUMNS = [
    "pair_id", "status", "reason", "model_name", "model_version", "mlflow_run_id", "probability_threshold",
    "test_f1", "test_precision", "test_recall", "test_accuracy", "test_roc_auc",
    *[f"baseline_{b}_f1" for b in BASELINES], *[f"baseline_{b}_roc_auc" for b in BASELINES],
    "best_baseline_f1", "beats_baselines", "epochs_run", "train_seconds", "n_sequences", "input_fingerprint",
    "feature_garch_mu", "feature_garch_omega", "feature_garch_alpha", "feature_garch_beta",
]


def previous_models(io_manager: PartitionedFileIOManager, date: str, sector: str) -> pd.DataFrame | None:
    """This partition's last gru_models output, if any (to reuse unchanged models), read through the
    run's IO manager (the one that wrote it)."""
    return io_manager.load_partition("gru_models", f"{date}|{sector}")


def reusable_row(previous: pd.DataFrame | None, pair_id: str, fingerprint: str, registry: ModelRegistry) -> dict | None:
    """The previous row of ``pair_id`` if it was trained on the same inputs and its version is still registered.

    Training is deterministic, so retraining would give the same weights: re-materializing a
    partition keeps one registered version per pair and partition, and a byte-identical config.
    """
    if previous is None or "input_fingerprint" not in previous:
        return None
    match = previous[(previous["pair_id"] == pair_id) & (previous["input_fingerprint"] == fingerprint) & (previous["status"] == "trained")]
    if match.empty:
        return None
    row = match.iloc[0].to_dict()
    return row if registry.version_exists(row["model_name"], row["model_version"]) else None


def _empty() -> pd.DataFrame:
    text = {"pair_id", "status", "reason", "model_name", "model_version", "mlflow_run_id", "input_fingerprint"}
    return pd.DataFrame({c: pd.Series(dtype=object if c in text else "float64") for c in GRU_COLUMNS})


def gru_models_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions; its raw_bars lookback is ``strategy``'s window."""
    return dg.asset(
        name="gru_models",
        partitions_def=daily,
        ins={
            "cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
            "model_selection": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        },
        deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.lookback_mapping(strategy.gru_window + strategy.reselect_every - 1))],
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"pytorch", "mlflow", "parquet"},
        description="Per selected pair, a GRU predicting whether the spread reverts at least halfway to its "
        "trailing mean within gru_horizon sessions; chronological train/validation/test; test metrics beside "
        "majority, logistic-regression and |z|-rule baselines; logged and registered in MLflow.",
    )(gru_models)


def gru_models(
    context: dg.AssetExecutionContext,
    cointegrated_pairs,
    model_selection,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    model_registry: ModelRegistry,
    home: PairsHome,
):
    if not context.has_partition_key:  # a range run (single-run backfill), see assets/ranges.py
        return _range(context, cointegrated_pairs, model_selection, store, bar_source, strategy, model_registry, home)
    date, sector = partition_parts(context)
    with stopwatch() as timer:
        frame, metadata = gru_partition(
            context, WindowReader(store, bar_source.source_name, home=home), date, sector, cointegrated_pairs, model_selection,
            bar_source, strategy, model_registry,
        )
        record_performance(store, date, sector, frame)
    return dg.Output(frame, metadata={**metadata, "elapsed_seconds": timer["seconds"]})


def _range(context, cointegrated_pairs, model_selection, store, bar_source, strategy, model_registry, home) -> dg.Output:
    """A range run: the GRUs of each formation session trained (and registered) once, the frame
    given to each partition of its trading period; one model_performance row set per partition."""
    with stopwatch() as timer:
        sector_ranges = ranges.sector_ranges(context, store, bar_source.source_name, strategy, home, lookback=strategy.gru_window)
        outputs = ranges.per_cohort(
            sector_ranges,
            lambda rng, _f, dates: gru_partition(
                context, rng.windows, str(dates[0].date()), rng.sector, cointegrated_pairs[rng.key(dates[0])],
                model_selection[rng.key(dates[0])], bar_source, strategy, model_registry,
            )[0],
        )
        for rng in sector_ranges:
            for session in rng.sessions:
                record_performance(store, str(session.date()), rng.sector, outputs[rng.key(session)])
    trained = sum(int((f["status"] == "trained").sum()) for f in {id(f): f for f in outputs.values()}.values())
    return dg.Output(
        outputs,
        metadata=ranges.range_metadata(
            sector_ranges, timer["seconds"], models_trained_or_reused=trained,
            partitions_with_models=sum(not f.empty for f in outputs.values()),
            hyperparameters=dg.MetadataValue.json(gru_config(strategy).as_params()),
        ),
    )


def gru_partition(
    context: dg.AssetExecutionContext,
    windows: WindowReader,
    date: str,
    sector: str,
    cointegrated_pairs: pd.DataFrame,
    model_selection: pd.DataFrame,
    bar_source: BarSource,
    strategy: StrategySettings,
    model_registry: ModelRegistry,
) -> tuple[pd.DataFrame, dict]:
    """One partition's GRUs (trained or reused, registered) and metadata (a one-partition run and a range run alike)."""
    key = f"{date}|{sector}"
    config = gru_config(strategy)
    selected = model_selection[model_selection["selected"]] if not model_selection.empty else model_selection
    pairs = cointegrated_pairs.set_index("pair_id").loc[list(selected["pair_id"])] if len(selected) else cointegrated_pairs.iloc[0:0]
    rows = []
    previous = previous_models(context.resources.io_manager, date, sector)
    window = None
    if len(pairs):
        legs = sorted(set(pairs["y"]) | set(pairs["x"]))
        formation = windows.formation_session(date, strategy.reselect_every)
        window = windows.read(legs, formation, strategy.gru_window, partition=key)
    for pair_id, pair in pairs.iterrows():
        spread = pair_spread(window.closes, pair["y"], pair["x"], pair["hedge_ratio"], pair["intercept"])
        fingerprint = fingerprint_of(
            window.fingerprint, pair_id, float(pair["hedge_ratio"]), float(pair["intercept"]),
            config.as_params(), strategy.gru_horizon, strategy.entry_z,
        )
        reused = reusable_row(previous, pair_id, fingerprint, model_registry)
        if reused is not None:
            context.log.info(f"{pair_id}: inputs unchanged, keeping {reused['model_name']} v{reused['model_version']}")
            rows.append(reused)
            continue
        try:
            result, feature_garch, _levels, garch = gru_stage_fit(
                window.closes, SimpleNamespace(pair_id=pair_id, **pair[["y", "x", "hedge_ratio", "intercept"]]), strategy, config
            )
        except GRUTrainingError as exc:
            context.log.warning(f"{key} {pair_id}: GRU skipped: {exc}")
            rows.append({"pair_id": pair_id, "status": "skipped", "reason": str(exc), "input_fingerprint": fingerprint})
            continue
        dataset = window.closes[[pair["y"], pair["x"]]].assign(spread=spread, **garch).reset_index()
        info = model_registry.log_pair_model(
            sector=sector,
            pair_id=pair_id,
            as_of=date,
            dagster_run_id=context.run_id,
            result=result,
            params={"sector": sector, "as_of_session": date, "gru_window": strategy.gru_window, "bar_source": bar_source.source_name},
            dataset_df=dataset,
            dataset_source=bar_source.source_name,
            fingerprint=fingerprint,
            spread=spread,
            entry_z=strategy.entry_z,
        )
        test = result.metrics["test"]
        row = {
            "pair_id": pair_id, "status": "trained", "reason": "", "model_name": info.model_name,
            "model_version": str(info.version), "mlflow_run_id": info.run_id,
            "probability_threshold": result.threshold,
            **{f"test_{k}": test[k] for k in ["f1", "precision", "recall", "accuracy", "roc_auc"]},
            **{f"baseline_{b}_f1": result.baseline_metrics[b]["f1"] for b in BASELINES},
            **{f"baseline_{b}_roc_auc": result.baseline_metrics[b]["roc_auc"] for b in BASELINES},
            "best_baseline_f1": max(result.baseline_metrics[b]["f1"] for b in BASELINES),
            "beats_baselines": bool(result.beats_baselines),
            "epochs_run": len(result.history),
            "train_seconds": result.train_seconds,
            "n_sequences": result.n_sequences,
            "input_fingerprint": fingerprint,
            **{f"feature_garch_{k}": v for k, v in feature_garch.items()},
        }
        rows.append(row)
        context.log.info(f"{pair_id}: test F1 {test['f1']:.3f} vs best baseline {row['best_baseline_f1']:.3f}; {info.model_name} v{info.version}")
    frame = pd.DataFrame(rows, columns=GRU_COLUMNS) if rows else _empty()
    trained = frame[frame["status"] == "trained"]
    return frame, {
        "window": window.label if window is not None else "n/a (no selected pairs)",
        "selected_pairs": len(pairs),
        "trained": len(trained),
        "skipped": dg.MetadataValue.md(
            "\n".join(f"- {r.pair_id}: {r.reason}" for r in frame[frame["status"] == "skipped"].itertuples()) or "_(none)_"
        ),
        "beats_baselines": int(trained["beats_baselines"].astype(bool).sum()) if len(trained) else 0,
        "hyperparameters": dg.MetadataValue.json(config.as_params()),
        "mlflow_tracking_uri": redact_url(model_registry.resolved_tracking_uri(), keep_user=False, keep_query=False),
        "note": "no selected pairs: nothing to train" if frame.empty else f"{len(trained)} model(s) trained",
        "test_metrics_vs_baselines": markdown_table(
            trained,
            ["pair_id", "test_f1", "test_roc_auc", "baseline_majority_f1", "baseline_logistic_f1", "baseline_z_rule_f1", "beats_baselines", "model_version"],
        ),
    }


def record_performance(store: MarketDataStore, date: str, sector: str, frame: pd.DataFrame) -> None:
    """The partition's rows of the model_performance table (one per selected pair)."""
    store.upsert_rows(
        model_performance_table,
        [
            {
                "as_of_session": date, "sector": sector, "pair_id": r.pair_id, "mlflow_run_id": r.mlflow_run_id,
                "model_name": r.model_name, "model_version": r.model_version, "test_f1": r.test_f1,
                "test_precision": r.test_precision, "test_recall": r.test_recall, "test_accuracy": r.test_accuracy,
                "test_roc_auc": r.test_roc_auc, "best_baseline_f1": r.best_baseline_f1,
                "beats_baselines": None if pd.isna(r.beats_baselines) else bool(r.beats_baselines),
                "status": r.status, "reason": r.reason or None,
            }
            for r in frame.itertuples()
        ],
    )
