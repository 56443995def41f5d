"""gru_models: a GRU per selected pair predicting spread reversion, tracked and registered in MLflow."""

from types import SimpleNamespace

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
from pairs_assets.instance.liveness import ensure_run_open
from pairs_assets.quant.features import GRUTrainingError
from pairs_assets.quant.stages import GRU_TRAINING, feature_columns, gru_config, gru_stage_fit_many, pair_spread
from pairs_assets.settings import StrategySettings
from pairs_assets.util import redact_url
from resources.bar_sources import BarSource
from resources.io_manager import PartitionedFileIOManager
from resources.market_data import MarketDataStore, model_performance_table
from resources.model_registry import ModelRegistry

BASELINES = ("majority", "logistic", "z_rule")
GRU_COLUMNS = [
    "pair_id",
    "status",
    "reason",
    "model_name",
    "model_version",
    "mlflow_run_id",
    "probability_threshold",
    "test_f1",
    "test_precision",
    "test_recall",
    "test_accuracy",
    "test_roc_auc",
    *[f"baseline_{b}_f1" for b in BASELINES],
    *[f"baseline_{b}_roc_auc" for b in BASELINES],
    "best_baseline_f1",
    "beats_baselines",
    "epochs_run",
    "train_seconds",
    "n_sequences",
    "input_fingerprint",
    "feature_garch_mu",
    "feature_garch_omega",
    "feature_garch_alpha",
    "feature_garch_beta",
    "feature_hedge_ratio",
    "feature_intercept",
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
    match = previous[
        (previous["pair_id"] == pair_id)
        & (previous["input_fingerprint"] == fingerprint)
        & (previous["status"] == "trained")
    ]
    if match.empty:
        return None
    row = match.iloc[0].to_dict()
    return row if registry.version_exists(row["model_name"], row["model_version"]) else None


def _empty() -> pd.DataFrame:
    text = {"pair_id", "status", "reason", "model_name", "model_version", "mlflow_run_id", "input_fingerprint"}
    return pd.DataFrame({c: pd.Series(dtype=object if c in text else "float64") for c in GRU_COLUMNS})


def gru_models_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions. It depends on its own session's ``raw_bars`` partition and
    reads its window (``strategy``'s ``gru_window``) from the store (see ``common.history_window_metadata``)."""
    return dg.asset(
        name="gru_models",
        partitions_def=daily,
        ins={
            "cointegrated_pairs": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
            "model_selection": dg.AssetIn(partition_mapping=partitions.same_partition_mapping()),
        },
        deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.same_partition_mapping())],
        metadata=history_window_metadata(
            strategy.reach(strategy.gru_window),
            f"{strategy.gru_window} sessions (gru_window) ending at its formation session, every {strategy.reselect_every}",
        ),
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
        ((frame, metadata),) = gru_cohorts(
            context,
            [
                (
                    WindowReader(store, bar_source.source_name, home=home),
                    date,
                    sector,
                    cointegrated_pairs,
                    model_selection,
                )
            ],
            bar_source,
            strategy,
            model_registry,
        )
        record_performance(store, date, sector, frame)
    return dg.Output(frame, metadata={**metadata, "elapsed_seconds": timer["seconds"]})


def _range(
    context, cointegrated_pairs, model_selection, store, bar_source, strategy, model_registry, home
) -> dg.Output:
    """A range run: the GRUs of every formation session of the range trained together (one batched
    fit, pair as batch dimension) and registered once each, a frame given to each partition of its
    trading period; one model_performance row set per partition."""
    with stopwatch() as timer:
        sector_ranges = ranges.sector_ranges(
            context, store, bar_source.source_name, strategy, home, lookback=strategy.gru_window
        )
        cohorts = [(rng, dates) for rng in sector_ranges for dates in rng.cohorts().values()]
        frames = gru_cohorts(
            context,
            [
                (
                    rng.windows,
                    str(dates[0].date()),
                    rng.sector,
                    cointegrated_pairs[rng.key(dates[0])],
                    model_selection[rng.key(dates[0])],
                )
                for rng, dates in cohorts
            ],
            bar_source,
            strategy,
            model_registry,
        )
        outputs = {rng.key(d): frame for (rng, dates), (frame, _meta) in zip(cohorts, frames) for d in dates}
        ranges.record_partition_metadata(
            context, {rng.key(d): meta for (rng, dates), (_frame, meta) in zip(cohorts, frames) for d in dates}
        )
        for rng in sector_ranges:
            for session in rng.sessions:
                record_performance(store, str(session.date()), rng.sector, outputs[rng.key(session)])
    trained = sum(int((frame["status"] == "trained").sum()) for frame, _meta in frames)
    return dg.Output(
        outputs,
        metadata=ranges.range_metadata(
            sector_ranges,
            timer["seconds"],
            models_trained_or_reused=trained,
            partitions_with_models=sum(not f.empty for f in outputs.values()),
            hyperparameters=dg.MetadataValue.json(gru_config(strategy).as_params()),
        ),
    )


#: Most pairs trained in one batched fit (bounds memory on a long range).
TRAIN_BATCH = 256


def gru_cohorts(
    context: dg.AssetExecutionContext,
    items: list[tuple[WindowReader, str, str, pd.DataFrame, pd.DataFrame]],
    bar_source: BarSource,
    strategy: StrategySettings,
    model_registry: ModelRegistry,
) -> list[tuple[pd.DataFrame, dict]]:
    """The GRUs of partitions ``(windows, date, sector, cointegrated_pairs, model_selection)``: each
    partition's frame and metadata (one partition in a one-partition run; a range's formation
    sessions in a range run).

    Every selected pair not reusable from the partition's previous output is trained in one
    batched fit (:func:`pairs_assets.quant.stages.gru_stage_fit_many`: a pair gets the same model
    alone or in any batch), then registered in MLflow.
    """
    config = gru_config(strategy)
    rows: list[list] = []
    windows_used: list = []
    n_selected: list[int] = []
    pending: list[tuple] = []  # (item, slot, pair_id, pair, spread, fingerprint)
    for i, (windows, date, sector, cointegrated_pairs, model_selection) in enumerate(items):
        key = f"{date}|{sector}"
        selected = model_selection[model_selection["selected"]] if not model_selection.empty else model_selection
        pairs = (
            cointegrated_pairs.set_index("pair_id").loc[list(selected["pair_id"])]
            if len(selected)
            else cointegrated_pairs.iloc[0:0]
        )
        previous = previous_models(context.resources.io_manager, date, sector)
        window = None
        if len(pairs):
            legs = sorted(set(pairs["y"]) | set(pairs["x"]))
            formation = windows.formation_session(date, strategy.reselect_every, strategy.formation_phase)
            window = windows.read(legs, formation, strategy.gru_window, partition=key)
        rows.append([])
        windows_used.append(window)
        n_selected.append(len(pairs))
        for pair_id, pair in pairs.iterrows():
            spread = pair_spread(window.closes, pair["y"], pair["x"], pair["hedge_ratio"], pair["intercept"])
            fingerprint = fingerprint_of(
                window.fingerprint,
                pair_id,
                float(pair["hedge_ratio"]),
                float(pair["intercept"]),
                config.as_params(),
                strategy.gru_horizon,
                strategy.entry_z,
                # what defines the label and the feature spread: a change retrains instead of reusing
                GRU_TRAINING,
                strategy.exit_z,
                strategy.stop_z,
                strategy.formation_window,
                strategy.reselect_every,
                strategy.causal_hedge,
            )
            reused = reusable_row(previous, pair_id, fingerprint, model_registry)
            if reused is not None:
                context.log.info(
                    f"{key} {pair_id}: inputs unchanged, keeping {reused['model_name']} v{reused['model_version']}"
                )
                rows[i].append(reused)
                continue
            rows[i].append(None)  # trained below, in the batch
            pending.append((i, len(rows[i]) - 1, pair_id, pair, spread, fingerprint))
    for start in range(0, len(pending), TRAIN_BATCH):
        chunk = pending[start : start + TRAIN_BATCH]
        fits = gru_stage_fit_many(
            [windows_used[i].closes for i, *_ in chunk],
            [
                SimpleNamespace(pair_id=pair_id, **pair[["y", "x", "hedge_ratio", "intercept"]])
                for _, _, pair_id, pair, _, _ in chunk
            ],
            strategy,
            config,
        )
        for (i, slot, pair_id, pair, spread, fingerprint), (result, feature_garch, _levels, garch) in zip(chunk, fits):
            _windows, date, sector, *_ = items[i]
            if isinstance(result, GRUTrainingError):
                context.log.warning(f"{date}|{sector} {pair_id}: GRU skipped: {result}")
                rows[i][slot] = {
                    "pair_id": pair_id,
                    "status": "skipped",
                    "reason": str(result),
                    "input_fingerprint": fingerprint,
                }
                continue
            if isinstance(result, BaseException):
                raise result
            rows[i][slot] = _register(
                context,
                windows_used[i],
                date,
                sector,
                pair_id,
                pair,
                spread,
                fingerprint,
                result,
                feature_garch,
                garch,
                bar_source,
                strategy,
                model_registry,
            )
    out = []
    for i, window in enumerate(windows_used):
        frame = pd.DataFrame(rows[i], columns=GRU_COLUMNS) if rows[i] else _empty()
        trained = frame[frame["status"] == "trained"]
        out.append(
            (
                frame,
                {
                    "window": window.label if window is not None else "n/a (no selected pairs)",
                    "selected_pairs": n_selected[i],
                    "trained": len(trained),
                    "skipped": dg.MetadataValue.md(
                        "\n".join(
                            f"- {r.pair_id}: {r.reason}" for r in frame[frame["status"] == "skipped"].itertuples()
                        )
                        or "_(none)_"
                    ),
                    "beats_baselines": int(trained["beats_baselines"].astype(bool).sum()) if len(trained) else 0,
                    "hyperparameters": dg.MetadataValue.json(config.as_params()),
                    "mlflow_tracking_uri": redact_url(
                        model_registry.resolved_tracking_uri(), keep_user=False, keep_query=False
                    ),
                    "note": "no selected pairs: nothing to train"
                    if frame.empty
                    else f"{len(trained)} model(s) trained",
                    "test_metrics_vs_baselines": markdown_table(
                        trained,
                        [
                            "pair_id",
                            "test_f1",
                            "test_roc_auc",
                            "baseline_majority_f1",
                            "baseline_logistic_f1",
                            "baseline_z_rule_f1",
                            "beats_baselines",
                            "model_version",
                        ],
                    ),
                },
            )
        )
    return out


def _register(
    context,
    window,
    date,
    sector,
    pair_id,
    pair,
    spread,
    fingerprint,
    result,
    feature_garch,
    garch,
    bar_source,
    strategy,
    model_registry,
) -> dict:
    """Log and register one trained pair model in MLflow; its gru_models row."""
    dataset = window.closes[[pair["y"], pair["x"]]].assign(spread=spread, **garch).reset_index()
    info = model_registry.log_pair_model(
        sector=sector,
        pair_id=pair_id,
        as_of=date,
        dagster_run_id=context.run_id,
        result=result,
        params={
            "sector": sector,
            "as_of_session": date,
            "gru_window": strategy.gru_window,
            "bar_source": bar_source.source_name,
        },
        dataset_df=dataset,
        dataset_source=bar_source.source_name,
        fingerprint=fingerprint,
        spread=spread,
        entry_z=strategy.entry_z,
        # an orphaned step (its run failed or canceled while it trained) registers nothing
        before_register=lambda: ensure_run_open(
            context.instance, context.run_id, f"registering {model_registry.model_name(sector)} for {pair_id} ({date})"
        ),
    )
    test = result.metrics["test"]
    row = {
        "pair_id": pair_id,
        "status": "trained",
        "reason": "",
        "model_name": info.model_name,
        "model_version": str(info.version),
        "mlflow_run_id": info.run_id,
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
        **feature_columns(feature_garch),
    }
    context.log.info(
        f"{date}|{sector} {pair_id}: test F1 {test['f1']:.3f} vs best baseline {row['best_baseline_f1']:.3f}; {info.model_name} v{info.version}"
    )
    return row


def record_performance(store: MarketDataStore, date: str, sector: str, frame: pd.DataFrame) -> None:
    """The partition's rows of the model_performance table (one per selected pair)."""
    store.upsert_rows(
        model_performance_table,
        [
            {
                "as_of_session": date,
                "sector": sector,
                "pair_id": r.pair_id,
                "mlflow_run_id": r.mlflow_run_id,
                "model_name": r.model_name,
                "model_version": r.model_version,
                "test_f1": r.test_f1,
                "test_precision": r.test_precision,
                "test_recall": r.test_recall,
                "test_accuracy": r.test_accuracy,
                "test_roc_auc": r.test_roc_auc,
                "best_baseline_f1": r.best_baseline_f1,
                "beats_baselines": None if pd.isna(r.beats_baselines) else bool(r.beats_baselines),
                "status": r.status,
                "reason": r.reason or None,
            }
            for r in frame.itertuples()
        ],
    )
