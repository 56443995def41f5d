"""The history a range run reads from the store is verified before anything is computed, and recorded.

The daily stages depend on ``raw_bars`` of their own session only, so Dagster knows nothing of the
hundreds of sessions each window reads: a range step checks, for each sector, that every symbol has
a close in every session its partitions' windows read, and fails — naming the symbol, the gap and
the first partition that needs it — before computing any partition or writing any file. A complete
history is recorded in the materialization's ``window_coverage``.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from pairs_assets import partitions
from pairs_assets.settings import EMBEDDED_HISTORY_START
from pairs_assets_tests.assets.graph_harness import DAILY_ASSETS, preload_history, resources_for
from pairs_assets_tests.assets.test_bad_input import failure_message
from resources.bar_sources import EmbeddedBarSource
from resources.market_data import MarketDataStore, bars_table

TECH = ["AAPL", "AMD", "MSFT"]
FIRST, LAST = "2022-12-27", "2022-12-28"
RANGE = {
    "dagster/asset_partition_range_start": f"{FIRST}|technology",
    "dagster/asset_partition_range_end": f"{LAST}|technology",
}


def _run(resources: dict) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        DAILY_ASSETS,
        selection=["correlation_matrix"],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        tags=RANGE,
        raise_on_error=False,
    )


def test_a_range_run_verifies_its_history_before_computing_and_records_it(own_pairs_home):
    source = EmbeddedBarSource()
    url = own_pairs_home.database_url
    resources = resources_for(url, source, home=own_pairs_home)
    strategy = resources["strategy"]  # the seed: a 60-session formation window, formed every session
    assert strategy.reselect_every == 1
    window = partitions.window_sessions(FIRST, strategy.formation_window, history_start=EMBEDDED_HISTORY_START)
    span = len(partitions.sessions_in_range(window[0], LAST))
    preload_history(url, source, TECH, LAST, span)
    # AAPL's bars of two sessions inside the first partition's window removed from the store
    gap = window[20:22]
    store = MarketDataStore(database_url=url)
    start, end = partitions.sessions_span_utc(gap[0], gap[-1])
    with store.engine.begin() as conn:
        t = bars_table
        removed = conn.execute(
            sa.delete(t).where(
                t.c.symbol == "AAPL", t.c.timestamp >= start.tz_localize(None), t.c.timestamp <= end.tz_localize(None)
            )
        ).rowcount
    assert removed == 2

    failed = _run(resources)
    assert not failed.success
    message = failure_message(failed)
    assert "MissingBarsError" in message or "has no bars" in message
    assert (
        f"partition {FIRST}|technology: symbol AAPL has no bars from source '{source.source_name}' for 2 of the {span} sessions"
        in message
    ), message
    assert f"first gap {gap[0].date()}, last {gap[-1].date()}" in message and "needed by 2 partition(s)" in message, (
        message
    )
    assert f"materialize raw_bars for {gap[0].date()}...{gap[-1].date()} first" in message
    assert not (own_pairs_home.outputs_dir / "correlation_matrix").exists()  # nothing computed or written

    preload_history(url, source, TECH, str(gap[-1].date()), 2)
    done = _run(resources)
    assert done.success
    (first, second) = sorted(done.asset_materializations_for_node("correlation_matrix"), key=lambda m: str(m.partition))
    coverage = first.metadata["window_coverage"].value
    assert coverage == f"- technology: {window[0].date()} → {LAST} ({span} sessions × 3 symbols): complete"
    assert second.metadata["window_coverage"].value == coverage  # the range's summary, on each partition
    # and each partition's own window and input fingerprint
    assert first.metadata["window"].value == f"{window[0].date()} → {FIRST} ({strategy.formation_window} sessions)"
    assert second.metadata["window"].value.endswith(f"→ {LAST} ({strategy.formation_window} sessions)")
    assert first.metadata["input_fingerprint"].value != second.metadata["input_fingerprint"].value
    for day in (FIRST, LAST):
        assert not pd.read_parquet(own_pairs_home.outputs_dir / "correlation_matrix" / day / "technology.parquet").empty
