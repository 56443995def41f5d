"""model_rankings and model_trends: unpartitioned views over the model_performance table.

Refreshed by the ``model_performance_refresh`` sensor after each successful daily_pairs run, and
materializable by hand.
"""

import dagster as dg
import pandas as pd

from pairs_assets.assets.common import markdown_table, stopwatch
from pairs_assets.quant.performance import model_trends as compute_trends
from pairs_assets.quant.performance import rank_models
from resources.market_data import MarketDataStore, model_performance_table

PERFORMANCE_GROUP = "model_performance"


def _performance(store: MarketDataStore) -> pd.DataFrame:
    return store.read_table(model_performance_table, model_performance_table.c.status == "trained")


@dg.asset(
    group_name=PERFORMANCE_GROUP,
    kinds={"pandas", "parquet"},
    deps=["gru_models"],
    description="Each pair's latest GRU, ranked by test F1, beside its best baseline.",
)
def model_rankings(store: MarketDataStore) -> dg.Output[pd.DataFrame]:
    with stopwatch() as timer:
        rankings = rank_models(_performance(store))
    return dg.Output(
        rankings,
        metadata={
            "pairs": len(rankings),
            "beating_baselines": int(rankings["beats_baselines"].fillna(False).astype(bool).sum())
            if len(rankings)
            else 0,
            "rankings": markdown_table(rankings, n=20),
            "elapsed_seconds": timer["seconds"],
        },
    )


@dg.asset(
    group_name=PERFORMANCE_GROUP,
    kinds={"pandas", "parquet"},
    deps=["gru_models"],
    description="Per pair: last test F1, mean and slope over the last 7 and 30 models (sessions).",
)
def model_trends(store: MarketDataStore) -> dg.Output[pd.DataFrame]:
    with stopwatch() as timer:
        trends = compute_trends(_performance(store))
    return dg.Output(
        trends,
        metadata={"pairs": len(trends), "trends": markdown_table(trends, n=20), "elapsed_seconds": timer["seconds"]},
    )
