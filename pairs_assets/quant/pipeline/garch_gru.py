"""The default strategy's pipeline: correlation_matrix → cointegrated_pairs → garch_models →
model_selection → gru_models → trading_config.

Each stage's one-partition compute is here (the pure stage math is in :mod:`pairs_assets.quant.stages`);
the Dagster assets are generated from :data:`PIPELINE` (:mod:`pairs_assets.assets.stage_factory`) and
the walk-forward iterates it (:func:`pairs_assets.quant.walkforward.replay.build_configs`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from pairs_assets.quant.config_model import SCHEMA_VERSION
from pairs_assets.quant.pipeline import gru
from pairs_assets.quant.pipeline.primitives import cointegration_screen, fingerprint_of
from pairs_assets.quant.pipeline.spec import (
    CheckDef,
    Json,
    Partition,
    PathValue,
    Pipeline,
    Replay,
    StageOutput,
    StageRun,
    StageSpec,
    md_reasons,
    md_table,
)
from pairs_assets.quant.prices import find_unusable_symbols
from pairs_assets.quant.stages import (
    build_trading_config,
    cointegration_stage,
    correlation_stage,
    empty_garch_frame,
    garch_series,
    garch_stage,
    garch_stage_many,
    selection_stage,
    sigma_forecasts_at,
)
from pairs_assets.quant.strategy import Strategy

__all__ = ["PIPELINE"]


def _formation_detail(field: str):
    def detail(s) -> str:
        return f"{getattr(s, field)} sessions ({field}) ending at its formation session, every {s.reselect_every}"

    return detail


def _formation_window(windows, date: str, sector: str, symbols, n: int, strategy: Strategy):
    formation = windows.formation_session(date, strategy.reselect_every, strategy.formation_phase)
    return windows.read(symbols, formation, n, partition=f"{date}|{sector}")


# --- correlation_matrix ------------------------------------------------------------------------------
def correlation_partition(run: StageRun, p: Partition) -> StageOutput:
    """One partition's correlation matrix and its metadata (a one-partition run and a range run alike)."""
    strategy = run.strategy
    symbols = p.windows.universe.symbols(p.sector)
    window = _formation_window(p.windows, p.date, p.sector, symbols, strategy.formation_window, strategy)
    stage = correlation_stage(window.closes, strategy)
    matrix, excluded, usable = stage.matrix, stage.excluded, stage.usable
    note = (
        f"sector {p.sector} has {len(usable)} usable symbol(s): no pairs to correlate"
        if len(usable) < 2
        else f"{len(matrix)} pairs of {len(usable)} symbols"
    )
    return StageOutput(
        matrix,
        {
            "window": window.label,
            "symbols": ", ".join(symbols),
            "excluded_symbols": md_reasons(excluded),
            "pairs": len(matrix),
            "pairs_at_or_above_threshold": int((matrix["correlation"] >= strategy.correlation_min).sum()),
            "correlation_min": strategy.correlation_min,
            "note": note,
            "top_pairs": md_table(matrix.sort_values("correlation", ascending=False)),
            "input_fingerprint": window.fingerprint,
        },
    )


def _correlation_summary(run: StageRun, values: dict, _counts: dict) -> dict:
    return {"pairs": sum(len(m) for m in values.values()), "correlation_min": run.strategy.correlation_min}


# --- cointegrated_pairs ------------------------------------------------------------------------------
def cointegrated_partition(run: StageRun, p: Partition, *, screened_out: bool = False) -> StageOutput:
    """One partition's pairs, metadata and check arguments (a one-partition run and a range run alike).

    ``screened_out``: the range's vectorised screen found no pair that could pass Engle-Granger in
    this formation window, so the stage tests no candidate (its output is the same empty frame).
    """
    strategy = run.strategy
    correlation_matrix = p.inputs["correlation_matrix"]
    symbols = p.windows.universe.symbols(p.sector)
    window = _formation_window(p.windows, p.date, p.sector, symbols, strategy.formation_window, strategy)
    excluded = find_unusable_symbols(window.closes, max_flat_fraction=strategy.max_flat_fraction)
    tested = correlation_matrix.iloc[0:0] if screened_out else correlation_matrix
    result, log_prices = cointegration_stage(window.closes, tested, strategy)
    pairs = result.pairs
    rejected = dict(zip(result.rejected["pair_id"], result.rejected["reason"])) if not result.rejected.empty else {}
    metadata = {
        "window": window.label,
        "candidates": int((correlation_matrix["correlation"] >= strategy.correlation_min).sum()),
        "pairs": len(pairs),
        "correlation_min": strategy.correlation_min,
        "eg_pvalue_max": strategy.eg_pvalue_max,
        "require_both_orderings": strategy.eg_require_both_orderings,
        "fdr_alpha": str(strategy.fdr_alpha),
        "excluded_symbols": md_reasons(excluded),
        "rejected_candidates": md_reasons(rejected),
        "note": "no cointegrated pairs in this window" if pairs.empty else f"{len(pairs)} cointegrated pair(s)",
        "top_pairs": md_table(
            pairs,
            ["pair_id", "correlation", "hedge_ratio", "eg_pvalue", "eg_pvalue_reverse", "johansen_trace", "half_life"],
        ),
        "input_fingerprint": window.fingerprint,
    }
    return StageOutput(pairs, metadata, (pairs, log_prices, strategy))


def cointegrated_range(run: StageRun, items: list[Partition]) -> tuple[list[StageOutput], dict]:
    """A range's formation sessions: Engle-Granger only where the walk-forward's vectorised screen
    (:func:`pairs_assets.quant.pipeline.primitives.cointegration_screen`, on the range's formation
    sessions of each sector at once) shows a pair can pass."""
    screens: dict[str, dict] = defaultdict(dict)
    screened = 0
    out = []
    for p in items:
        closes = p.windows.panel.closes[list(p.symbols)]
        if p.formation not in screens[p.sector]:
            # Engle-Granger on the range's formation sessions only: no other session runs the stage
            at = closes.index.get_indexer(pd.DatetimeIndex(sorted(set(p.formations))))
            screens[p.sector] = dict(zip(closes.index, cointegration_screen(closes, run.strategy, at=at[at >= 0])))
        screened_out = not screens[p.sector][p.formation]
        screened += screened_out
        out.append(cointegrated_partition(run, p, screened_out=screened_out))
    return out, {"formations_screened_out": screened}


def _cointegrated_summary(run: StageRun, values: dict, counts: dict) -> dict:
    return {
        "pairs": sum(len(p) for p in values.values()),
        "partitions_with_pairs": sum(not p.empty for p in values.values()),
        "formations_screened_out": counts["formations_screened_out"],
        "correlation_min": run.strategy.correlation_min,
        "eg_pvalue_max": run.strategy.eg_pvalue_max,
    }


# --- garch_models --------------------------------------------------------------------------------
def garch_partition(run: StageRun, p: Partition) -> StageOutput:
    """One partition's GARCH fits, metadata and check arguments (a one-partition run and a range run alike)."""
    strategy = run.strategy
    cointegrated_pairs = p.inputs["cointegrated_pairs"]
    if cointegrated_pairs.empty:
        fits, window_label, fingerprint = empty_garch_frame(), "n/a (no pairs)", "n/a"
    else:
        legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"]))
        window = _formation_window(p.windows, p.date, p.sector, legs, strategy.garch_sessions, strategy)
        fits = garch_stage(window.closes, cointegrated_pairs, strategy)
        window_label, fingerprint = window.label, window.fingerprint
    metadata = {
        "window": window_label,
        "models": len(fits),
        "converged": int(fits["converged"].sum()) if len(fits) else 0,
        # which code fitted each pair: the batched estimator, or arch as its recorded fallback
        "estimators": Json({str(k): int(v) for k, v in fits["estimator"].value_counts().sort_index().items()}),
        "garch_window": strategy.garch_window,
        "forecast_holdout": strategy.garch_holdout,
        "note": "no cointegrated pairs: nothing to fit" if fits.empty else f"{len(fits)} GARCH(1,1) fit(s)",
        "models_table": md_table(
            fits,
            [
                "pair_id",
                "omega",
                "alpha",
                "beta",
                "persistence",
                "sigma_forecast",
                "forecast_ratio",
                "ljung_box_p",
                "arch_lm_p",
                "converged",
                "estimator",
            ],
        ),
        "input_fingerprint": fingerprint,
    }
    return StageOutput(fits, metadata, (fits, strategy))


def _garch_summary(run: StageRun, values: dict, _counts: dict) -> dict:
    return {
        "models": sum(len(f) for f in values.values()),
        "garch_window": run.strategy.garch_window,
        "forecast_holdout": run.strategy.garch_holdout,
    }


# --- model_selection ---------------------------------------------------------------------------------
def selection_partition(run: StageRun, p: Partition) -> StageOutput:
    """One partition's scores, metadata and check arguments (a one-partition run and a range run alike)."""
    strategy = run.strategy
    cointegrated_pairs, garch_models = p.inputs["cointegrated_pairs"], p.inputs["garch_models"]
    window_label, closes = "n/a (no pairs)", None
    if not cointegrated_pairs.empty:
        legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"]))
        window = _formation_window(p.windows, p.date, p.sector, legs, strategy.backtest_sessions, strategy)
        window_label, closes = window.label, window.closes
    scores, backtest_frame = selection_stage(closes, cointegrated_pairs, garch_models, strategy)
    shown = scores.merge(backtest_frame[["pair_id", "sharpe", "n_trades"]], on="pair_id", how="left")
    metadata = {
        "backtest_window": window_label,
        "pairs_scored": len(scores),
        "selected": int(scores["selected"].sum()) if len(scores) else 0,
        "score_min": strategy.score_min,
        "weights": ", ".join(f"{w:g}" for w in strategy.score_weights),
        "note": "no pairs to score" if scores.empty else f"{int(scores['selected'].sum())} of {len(scores)} selected",
        "ranking": md_table(
            shown.sort_values("rank"),
            [
                "rank",
                "pair_id",
                "composite",
                "aic_score",
                "forecast_score",
                "backtest_score",
                "diagnostic_score",
                "sharpe",
                "n_trades",
                "selected",
            ],
        ),
    }
    return StageOutput(scores, metadata, (scores, strategy))


def _selection_summary(run: StageRun, values: dict, _counts: dict) -> dict:
    return {
        "pairs_scored": sum(len(s) for s in values.values()),
        "selected": sum(int(s["selected"].sum()) for s in values.values() if len(s)),
        "partitions_with_selected_pairs": sum(bool(len(s)) and bool(s["selected"].any()) for s in values.values()),
        "score_min": run.strategy.score_min,
    }


# --- trading_config ----------------------------------------------------------------------------------
def config_partition(run: StageRun, p: Partition) -> StageOutput:
    """One partition's config, written (canonical JSON file + the store's row); no stored value."""
    strategy, store = run.strategy, run.resources["store"]
    source = run.resources["bar_source"].source_name
    windows, date, sector = p.windows, p.date, p.sector
    cointegrated_pairs, garch_models = p.inputs["cointegrated_pairs"], p.inputs["garch_models"]
    symbols = windows.universe.symbols(sector)
    key = f"{date}|{sector}"
    formation_day = windows.formation_session(date, strategy.reselect_every, strategy.formation_phase)
    formation = windows.read(symbols, formation_day, strategy.formation_window, partition=key)
    legs = sorted(set(cointegrated_pairs["y"]) | set(cointegrated_pairs["x"])) if len(cointegrated_pairs) else []
    history = windows.read(legs, date, strategy.history_sessions, partition=key) if legs else formation
    fingerprint = fingerprint_of(formation.fingerprint, history.fingerprint, source, strategy.model_dump(mode="json"))
    if legs and formation_day < pd.Timestamp(date):
        # later in the trading period: the formation's GARCH σ filtered forward to this as-of session
        ahead = len(windows.sessions_between(formation_day, date)) - 1
        garch_models = garch_models.assign(
            sigma_forecast=garch_models["pair_id"].map(
                sigma_forecasts_at(
                    history.closes.iloc[-(strategy.garch_window + 1 + ahead) :], cointegrated_pairs, garch_models
                )
            )
        )
    config = build_trading_config(
        as_of=date,
        effective_session=str(windows.next_session(date).date()),
        formation_session=str(formation_day.date()),
        sector=sector,
        source=source,
        symbols=symbols,
        pairs=cointegrated_pairs,
        garch=garch_models,
        scores=p.inputs["model_selection"],
        models=p.inputs["gru_models"],
        formation_closes=formation.closes,
        strategy=strategy,
        fingerprint=fingerprint,
    )
    document = config.document()
    path = str(windows.home.trading_config_path(date, sector))
    run.write_bytes(path, config.to_json_bytes())
    store.write_trading_config(document, path)
    table = pd.DataFrame(
        [
            {
                "pair_id": q["pair_id"],
                "hedge_ratio": q["hedge_ratio"],
                "sigma_forecast": q["garch"]["sigma_forecast"],
                "composite": q["scores"]["composite"],
                "gross_fraction": q["sizing"]["gross_fraction"],
                "model_version": (q["model"] or {}).get("version", "—"),
                "beats_baselines": (q["model"] or {}).get("beats_baselines", "—"),
            }
            for q in document["pairs"]
        ]
    )
    metadata = {
        "path": PathValue(path),
        "as_of_session": date,
        "effective_session": document["effective_session"],
        "pairs": len(document["pairs"]),
        "note": "no pair selected: trade nothing in this sector"
        if not document["pairs"]
        else f"{len(document['pairs'])} pair(s) to trade",
        "selected_pairs": md_table(table),
        "window": formation.label,
        "history_window": history.label,
        "input_fingerprint": fingerprint,
        "schema_version": SCHEMA_VERSION,
        "document": Json(document),
    }
    return StageOutput(document, metadata)


def _config_summary(run: StageRun, values: dict, _counts: dict) -> dict:
    return {
        "pairs": sum(len(document["pairs"]) for document in values.values()),
        "schema_version": SCHEMA_VERSION,
        "path": PathValue(str(Path(run.resources["home"].outputs_dir) / "trading_config")),
    }


# --- the walk-forward's stages (windows sliced from the sector's panel, a block of formations at once) ---
def _legs(pairs: pd.DataFrame) -> list[str]:
    return [] if pairs.empty else sorted(set(pairs["y"]) | set(pairs["x"]))


def correlation_replay(r: Replay, formations: list) -> dict:
    """Each formation's correlation matrix, except where the screen shows no pair can pass on a
    complete window (the stages could only drop pairs from the screen's set: that formation gets
    the empty config without running them)."""
    out = {}
    n = r.strategy.formation_window
    for fs in formations:
        end_f = r.panel.position(fs)
        start = end_f - n + 1
        if not r.screen[end_f] and start >= 0 and r.gaps[end_f + 1] == r.gaps[start]:
            continue
        out[fs] = correlation_stage(r.panel.window(r.symbols, end_f, n), r.strategy).matrix
    return out


def cointegrated_replay(r: Replay, formations: list) -> dict:
    out = {}
    for fs, matrix in _upstream(r, "correlation_matrix", formations):
        formation = r.panel.window(r.symbols, r.panel.position(fs), r.strategy.formation_window)
        result, _log_prices = cointegration_stage(formation, matrix, r.strategy)
        out[fs] = result.pairs
    return out


def garch_replay(r: Replay, formations: list) -> dict:
    """Every formation's pairs' GARCH fits in one batched call (:func:`pairs_assets.quant.stages.garch_stage_many`)."""
    fitted = [(fs, pairs) for fs, pairs in _upstream(r, "cointegrated_pairs", formations) if not pairs.empty]
    frames = (r.garch_many or garch_stage_many)(
        [
            garch_series(
                r.panel.window(_legs(pairs), r.panel.position(fs), r.strategy.garch_sessions), pairs, r.strategy
            )
            for fs, pairs in fitted
        ],
        [pairs for _fs, pairs in fitted],
        r.strategy,
    )
    return {fs: frame for (fs, _pairs), frame in zip(fitted, frames)}


def selection_replay(r: Replay, formations: list) -> dict:
    out = {}
    for fs, garch in _upstream(r, "garch_models", formations):
        pairs = r.outputs["cointegrated_pairs"][fs]
        window = r.panel.window(_legs(pairs), r.panel.position(fs), r.strategy.backtest_sessions)
        out[fs], _ = selection_stage(window, pairs, garch, r.strategy)
    return out


def gru_replay(r: Replay, formations: list) -> dict:
    """The walk-forward's GRU stand-in (``r.models_for``) on each formation's selected pairs."""
    if r.models_for is None:
        return {}
    out = {}
    for fs, scores in _upstream(r, "model_selection", formations):
        pairs = r.outputs["cointegrated_pairs"][fs]
        selected = pairs[pairs["pair_id"].isin(scores.loc[scores["selected"], "pair_id"])]
        window = r.panel.window(_legs(pairs), r.panel.position(fs), r.strategy.gru_window)
        out[fs] = r.models_for(fs, selected, window)
    return out


def _upstream(r: Replay, stage: str, formations: list):
    done = r.outputs.get(stage, {})
    return [(fs, done[fs]) for fs in formations if fs in done]


COINTEGRATED_PAIRS_CHECKS = (
    CheckDef("correlation_above_min", "Every pair's correlation ≥ correlation_min.", True),
    CheckDef(
        "eg_pvalue_below_max",
        "Every pair's Engle-Granger p < eg_pvalue_max, re-tested with statsmodels coint on the window.",
        True,
    ),
)
GARCH_CHECKS = (
    CheckDef("residual_diagnostics", "Ljung-Box and ARCH-LM p ≥ alpha on standardized residuals.", False),
    CheckDef("garch_converged", "Every GARCH(1,1) fit converged.", False),
)
MODEL_SELECTION_CHECKS = (CheckDef("composite_above_min", "Every selected pair's composite score > score_min.", True),)

PIPELINE = Pipeline(
    "garch_gru",
    [
        StageSpec(
            name="correlation_matrix",
            replay=correlation_replay,
            inputs=(),
            window=lambda s: s.formation_window,
            window_detail=_formation_detail("formation_window"),
            compute=correlation_partition,
            range_summary=_correlation_summary,
            kinds=frozenset({"pandas", "parquet"}),
            description="Pearson correlations of daily log returns over the formation window (long form: "
            "symbol_a, symbol_b, correlation, n_obs). Stale or constant series are excluded with a reason.",
        ),
        StageSpec(
            name="cointegrated_pairs",
            replay=cointegrated_replay,
            inputs=("correlation_matrix",),
            window=lambda s: s.formation_window,
            window_detail=_formation_detail("formation_window"),
            compute=cointegrated_partition,
            compute_range=cointegrated_range,
            range_summary=_cointegrated_summary,
            checks=COINTEGRATED_PAIRS_CHECKS,
            evaluate_checks="pairs_assets.checks:cointegrated_pairs_results",
            kinds=frozenset({"statsmodels", "parquet"}),
            description="Pairs with correlation ≥ correlation_min that pass Engle-Granger (p < eg_pvalue_max) with "
            "hedge ratio, intercept, Johansen trace and half-life; optional Benjamini-Hochberg control.",
        ),
        StageSpec(
            name="garch_models",
            replay=garch_replay,
            inputs=("cointegrated_pairs",),
            window=lambda s: s.garch_sessions,
            window_detail=_formation_detail("garch_sessions"),
            compute=garch_partition,
            range_summary=_garch_summary,
            checks=GARCH_CHECKS,
            evaluate_checks="pairs_assets.checks:garch_results",
            kinds=frozenset({"arch", "parquet"}),
            description="GARCH(1,1) with constant mean and normal errors on each pair's spread returns over "
            "garch_window sessions: parameters, log-likelihood, AIC/BIC, persistence, 1-step σ forecast, "
            "out-of-sample QLIKE against a naive variance forecast, Ljung-Box and ARCH-LM p-values.",
        ),
        StageSpec(
            name="model_selection",
            replay=selection_replay,
            inputs=("cointegrated_pairs", "garch_models"),
            window=lambda s: s.backtest_sessions,
            window_detail=_formation_detail("backtest_sessions"),
            compute=selection_partition,
            range_summary=_selection_summary,
            checks=MODEL_SELECTION_CHECKS,
            evaluate_checks="pairs_assets.checks:model_selection_results",
            kinds=frozenset({"pandas", "parquet"}),
            description="Composite score on an absolute scale = 0.4·AIC/BIC + 0.3·forecast + 0.2·backtest + "
            "0.1·diagnostics (see docs/methodology.md 'Scoring'); pairs above score_min are selected, ranked.",
        ),
        StageSpec(
            name="gru_models",
            replay=gru_replay,
            inputs=("cointegrated_pairs", "model_selection"),
            window=lambda s: s.gru_window,
            window_detail=_formation_detail("gru_window"),
            compute=gru.gru_partition,
            compute_range=gru.gru_range,
            range_summary=gru.gru_summary,
            after_partition=gru.record_performance,
            resources=("model_registry",),
            kinds=frozenset({"pytorch", "mlflow", "parquet"}),
            description="Per selected pair, a GRU predicting whether the spread reverts at least halfway to its "
            "trailing mean within gru_horizon sessions; chronological train/validation/test; test metrics beside "
            "majority, logistic-regression and |z|-rule baselines; logged and registered in MLflow.",
        ),
        StageSpec(
            name="trading_config",
            inputs=("cointegrated_pairs", "garch_models", "model_selection", "gru_models"),
            window=lambda s: s.history_sessions,
            window_detail=lambda s: (
                f"the formation window ({s.formation_window} sessions ending at its formation session) and its pairs' "
                f"history_sessions ({s.history_sessions}) ending at its as-of session"
            ),
            compute=config_partition,
            range_summary=_config_summary,
            per_session=True,
            window_ends_at_as_of=True,
            stores_output=False,
            kinds=frozenset({"json"}),
            description="The selected pairs for the next session: legs, hedge ratio, spread mean/σ, GARCH "
            "parameters and σ forecast, entry/exit/stop z, sizing inputs, scores, input fingerprint.",
        ),
    ],
)
