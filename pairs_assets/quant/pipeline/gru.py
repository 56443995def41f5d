"""The gru_models stage: a GRU per selected pair predicting spread reversion, registered in MLflow.

All selected pairs of the partitions computed together (one partition, or a range's formation
sessions) train in one batched fit (:func:`pairs_assets.quant.stages.gru_stage_fit_many`); a pair
whose inputs did not change keeps its registered version. The registry, the store, the run's log and
its previous output come through :class:`~pairs_assets.quant.pipeline.spec.StageRun`.
"""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from pairs_assets.quant.features import GRUTrainingError
from pairs_assets.quant.pipeline.primitives import fingerprint_of
from pairs_assets.quant.pipeline.spec import Json, Md, Partition, StageOutput, StageRun, md_table
from pairs_assets.quant.stages import GRU_TRAINING, feature_columns, gru_config, gru_stage_fit_many, pair_spread
from pairs_assets.util import redact_url

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


def reusable_row(previous: pd.DataFrame | None, pair_id: str, fingerprint: str, registry) -> dict | None:
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


def gru_partition(run: StageRun, p: Partition) -> StageOutput:
    """One partition's GRUs (the batched path with one partition)."""
    (out,) = gru_cohorts(run, [p])
    return out


def gru_range(run: StageRun, items: list[Partition]) -> tuple[list[StageOutput], dict]:
    """A range run: the GRUs of every formation session of the range trained together (one batched
    fit, pair as batch dimension) and registered once each."""
    return gru_cohorts(run, items), {}


def gru_summary(run: StageRun, values: dict, _counts: dict) -> dict:
    return {
        "models_trained_or_reused": sum(
            int((frame["status"] == "trained").sum()) for frame in {id(f): f for f in values.values()}.values()
        ),
        "partitions_with_models": sum(not f.empty for f in values.values()),
        "hyperparameters": Json(gru_config(run.strategy).as_params()),
    }


#: Most pairs trained in one batched fit (bounds memory on a long range).
TRAIN_BATCH = 256


def gru_cohorts(run: StageRun, items: list[Partition]) -> list[StageOutput]:
    """The GRUs of partitions ``(windows, date, sector, cointegrated_pairs, model_selection)``: each
    partition's frame and metadata (one partition in a one-partition run; a range's formation
    sessions in a range run).

    Every selected pair not reusable from the partition's previous output is trained in one
    batched fit (:func:`pairs_assets.quant.stages.gru_stage_fit_many`: a pair gets the same model
    alone or in any batch), then registered in MLflow.
    """
    strategy, model_registry = run.strategy, run.resources["model_registry"]
    config = gru_config(strategy)
    rows: list[list] = []
    windows_used: list = []
    n_selected: list[int] = []
    pending: list[tuple] = []  # (item, slot, pair_id, pair, spread, fingerprint)
    for i, item in enumerate(items):
        windows, date, sector = item.windows, item.date, item.sector
        cointegrated_pairs, model_selection = item.inputs["cointegrated_pairs"], item.inputs["model_selection"]
        key = f"{date}|{sector}"
        selected = model_selection[model_selection["selected"]] if not model_selection.empty else model_selection
        pairs = (
            cointegrated_pairs.set_index("pair_id").loc[list(selected["pair_id"])]
            if len(selected)
            else cointegrated_pairs.iloc[0:0]
        )
        previous = run.previous(f"{date}|{sector}")
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
                run.log.info(
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
            date, sector = items[i].date, items[i].sector
            if isinstance(result, GRUTrainingError):
                run.log.warning(f"{date}|{sector} {pair_id}: GRU skipped: {result}")
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
                run,
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
            )
    out = []
    for i, window in enumerate(windows_used):
        frame = pd.DataFrame(rows[i], columns=GRU_COLUMNS) if rows[i] else _empty()
        trained = frame[frame["status"] == "trained"]
        out.append(
            StageOutput(
                frame,
                {
                    "window": window.label if window is not None else "n/a (no selected pairs)",
                    "selected_pairs": n_selected[i],
                    "trained": len(trained),
                    "skipped": Md(
                        "\n".join(
                            f"- {r.pair_id}: {r.reason}" for r in frame[frame["status"] == "skipped"].itertuples()
                        )
                        or "_(none)_"
                    ),
                    "beats_baselines": int(trained["beats_baselines"].astype(bool).sum()) if len(trained) else 0,
                    "hyperparameters": Json(config.as_params()),
                    "mlflow_tracking_uri": redact_url(
                        model_registry.resolved_tracking_uri(), keep_user=False, keep_query=False
                    ),
                    "note": "no selected pairs: nothing to train"
                    if frame.empty
                    else f"{len(trained)} model(s) trained",
                    "test_metrics_vs_baselines": md_table(
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
    run: StageRun,
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
) -> dict:
    """Log and register one trained pair model in MLflow; its gru_models row."""
    strategy, model_registry = run.strategy, run.resources["model_registry"]
    source = run.resources["bar_source"].source_name
    dataset = window.closes[[pair["y"], pair["x"]]].assign(spread=spread, **garch).reset_index()
    info = model_registry.log_pair_model(
        sector=sector,
        pair_id=pair_id,
        as_of=date,
        dagster_run_id=run.run_id,
        result=result,
        params={
            "sector": sector,
            "as_of_session": date,
            "gru_window": strategy.gru_window,
            "bar_source": source,
        },
        dataset_df=dataset,
        dataset_source=source,
        fingerprint=fingerprint,
        spread=spread,
        entry_z=strategy.entry_z,
        # which strategies file the run saw (the schedule's tags): a threshold change is on the MLflow run
        extra_tags=dict(run.tags),
        # an orphaned step (its run failed or canceled while it trained) registers nothing
        before_register=lambda: run.ensure_open(
            f"registering {model_registry.model_name(sector)} for {pair_id} ({date})"
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
    run.log.info(
        f"{date}|{sector} {pair_id}: test F1 {test['f1']:.3f} vs best baseline {row['best_baseline_f1']:.3f}; {info.model_name} v{info.version}"
    )
    return row


def record_performance(run: StageRun, date: str, sector: str, frame: pd.DataFrame) -> None:
    """The partition's rows of the model_performance table (one per selected pair)."""
    run.resources["store"].upsert_model_performance(
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
