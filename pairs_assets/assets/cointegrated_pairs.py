"""cointegrated_pairs: correlation ≥ threshold, then Engle-Granger both ways, Johansen, half-life."""

from collections import defaultdict

import dagster as dg
import pandas as pd

from pairs_assets import checks, partitions
from pairs_assets.assets import ranges
from pairs_assets.assets.common import (
    GROUP,
    WindowReader,
    history_window_metadata,
    markdown_table,
    partition_parts,
    reasons_table,
    stopwatch,
)
from pairs_assets.home import PairsHome
from pairs_assets.quant.prices import find_unusable_symbols
from pairs_assets.quant.stages import cointegration_stage
from pairs_assets.settings import StrategySettings
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore


def cointegrated_pairs_asset(daily: dg.MultiPartitionsDefinition, strategy: StrategySettings) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions. It depends on its own session's ``raw_bars`` partition and
    reads its window (``strategy``'s ``formation_window``) from the store (see ``common.history_window_metadata``)."""
    return dg.asset(
        name="cointegrated_pairs",
        partitions_def=daily,
        ins={"correlation_matrix": dg.AssetIn(partition_mapping=partitions.same_partition_mapping())},
        deps=[dg.AssetDep("raw_bars", partition_mapping=partitions.same_partition_mapping())],
        metadata=history_window_metadata(
            strategy.reach(strategy.formation_window),
            f"{strategy.formation_window} sessions (formation_window) ending at its formation session, every {strategy.reselect_every}",
        ),
        check_specs=checks.check_specs(checks.COINTEGRATED_PAIRS_CHECKS, daily),
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"statsmodels", "parquet"},
        description="Pairs with correlation ≥ correlation_min that pass Engle-Granger (p < eg_pvalue_max) with "
        "hedge ratio, intercept, Johansen trace and half-life; optional Benjamini-Hochberg control.",
    )(cointegrated_pairs)


def cointegrated_pairs(
    context: dg.AssetExecutionContext,
    correlation_matrix,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    home: PairsHome,
):
    if not context.has_partition_key:  # a range run (single-run backfill), see assets/ranges.py
        yield from _range(context, correlation_matrix, store, bar_source, strategy, home)
        return
    date, sector = partition_parts(context)
    with stopwatch() as timer:
        pairs, metadata, check_results = cointegrated_partition(
            WindowReader(store, bar_source.source_name, home=home), date, sector, correlation_matrix, strategy
        )
    yield dg.Output(pairs, metadata={**metadata, "elapsed_seconds": timer["seconds"]})
    yield from check_results


def cointegrated_partition(
    windows: WindowReader,
    date: str,
    sector: str,
    correlation_matrix: pd.DataFrame,
    strategy: StrategySettings,
    *,
    screened_out: bool = False,
) -> tuple[pd.DataFrame, dict, list[dg.AssetCheckResult]]:
    """One partition's pairs, metadata and check results (a one-partition run and a range run alike).

    ``screened_out``: the range's vectorised screen found no pair that could pass Engle-Granger in
    this formation window, so the stage tests no candidate (its output is the same empty frame).
    """
    symbols = windows.universe.symbols(sector)
    window = windows.read(
        symbols,
        windows.formation_session(date, strategy.reselect_every, strategy.formation_phase),
        strategy.formation_window,
        partition=f"{date}|{sector}",
    )
    excluded = find_unusable_symbols(window.closes, max_flat_fraction=strategy.max_flat_fraction)
    tested = correlation_matrix.iloc[0:0] if screened_out else correlation_matrix
    result, log_prices = cointegration_stage(window.closes, tested, strategy)
    pairs = result.pairs
    check_results = checks.cointegrated_pairs_results(pairs, log_prices, strategy)
    rejected = dict(zip(result.rejected["pair_id"], result.rejected["reason"])) if not result.rejected.empty else {}
    metadata = {
        "window": window.label,
        "candidates": int((correlation_matrix["correlation"] >= strategy.correlation_min).sum()),
        "pairs": len(pairs),
        "correlation_min": strategy.correlation_min,
        "eg_pvalue_max": strategy.eg_pvalue_max,
        "require_both_orderings": strategy.eg_require_both_orderings,
        "fdr_alpha": str(strategy.fdr_alpha),
        "excluded_symbols": reasons_table(excluded),
        "rejected_candidates": reasons_table(rejected),
        "note": "no cointegrated pairs in this window" if pairs.empty else f"{len(pairs)} cointegrated pair(s)",
        "top_pairs": markdown_table(
            pairs,
            ["pair_id", "correlation", "hedge_ratio", "eg_pvalue", "eg_pvalue_reverse", "johansen_trace", "half_life"],
        ),
        "input_fingerprint": window.fingerprint,
    }
    return pairs, metadata, check_results


def _range(context, matrices: dict[str, pd.DataFrame], store, bar_source, strategy, home: PairsHome):
    from pairs_assets.quant.walkforward.replay import cointegration_screen

    with stopwatch() as timer:
        sector_ranges = ranges.sector_ranges(
            context, store, bar_source.source_name, strategy, home, lookback=strategy.formation_window
        )
        screened = 0

        def compute(rng: ranges.SectorRange, formation: pd.Timestamp, dates: list[pd.Timestamp]):
            nonlocal screened
            closes = rng.windows.panel.closes[list(rng.symbols)]
            if formation not in screens[rng.sector]:
                # Engle-Granger on the range's formation sessions only: no other session runs the stage
                at = closes.index.get_indexer(pd.DatetimeIndex(sorted(set(rng.formation.values()))))
                screens[rng.sector] = dict(zip(closes.index, cointegration_screen(closes, strategy, at=at[at >= 0])))
            screened_out = not screens[rng.sector][formation]
            screened += screened_out
            key = rng.key(dates[0])
            return cointegrated_partition(
                rng.windows, str(dates[0].date()), rng.sector, matrices[key], strategy, screened_out=screened_out
            )

        screens: dict[str, dict] = defaultdict(dict)
        outputs = ranges.per_cohort(sector_ranges, compute)
    pairs = {key: value[0] for key, value in outputs.items()}
    ranges.record_partition_metadata(context, {key: value[1] for key, value in outputs.items()})
    yield dg.Output(
        pairs,
        metadata=ranges.range_metadata(
            sector_ranges,
            timer["seconds"],
            pairs=sum(len(p) for p in pairs.values()),
            partitions_with_pairs=sum(not p.empty for p in pairs.values()),
            formations_screened_out=screened,
            correlation_min=strategy.correlation_min,
            eg_pvalue_max=strategy.eg_pvalue_max,
        ),
    )
    yield from ranges.check_outputs(context)
    yield from ranges.check_evaluations(
        context, checks.COINTEGRATED_PAIRS_CHECKS, {k: v[2] for k, v in outputs.items()}
    )
