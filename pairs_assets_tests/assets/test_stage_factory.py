"""A stage added through its spec only: the factory generates its asset, checks and both run paths.

The daily stage assets are generated from a :class:`pairs_assets.quant.pipeline.Pipeline`
(:func:`pairs_assets.assets.stage_factory.stage_assets`). Here a pipeline extends the default one's
first two stages with ``pair_count`` — declared in this file and nowhere else — under a key prefix:
its asset, its input (the prefixed upstream stage), its ``raw_bars`` dependency (the shared,
unprefixed asset) and its check come out of the factory, and a one-partition run and a range run
both materialize it and record its check per partition.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pairs_assets.assets.stage_factory import stage_assets
from pairs_assets.partitions import partition_key, same_partition_mapping
from pairs_assets.quant.pipeline import CheckDef, Pipeline, PipelineError, StageOutput, StageSpec
from pairs_assets.quant.pipeline.garch_gru import PIPELINE
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.assets.graph_harness import EMBEDDED_DAILY, daily_asset, preload_history, resources_for
from resources.bar_sources import EmbeddedBarSource


def pair_count(run, p) -> StageOutput:
    """The added stage: how many cointegrated pairs the partition has."""
    n = len(p.inputs["cointegrated_pairs"])
    return StageOutput(pd.DataFrame({"pairs": [n]}), {"pairs": n, "window": f"{p.date} (its formation's pairs)"}, (n,))


def pair_count_results(n: int) -> list[dg.AssetCheckResult]:
    """Its check evaluator (the orchestration side of its spec's ``evaluate_checks``)."""
    return [
        dg.AssetCheckResult(
            check_name="at_most_ten_pairs",
            asset_key="pair_count",
            passed=n <= 10,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"pairs": n},
        )
    ]


PAIR_COUNT = StageSpec(
    name="pair_count",
    inputs=("cointegrated_pairs",),
    window=lambda s: s.formation_window,
    window_detail=lambda s: f"{s.formation_window} sessions (formation_window)",
    compute=pair_count,
    range_summary=lambda run, values, counts: {"partitions": len(values)},
    checks=(CheckDef("at_most_ten_pairs", "A partition has at most ten cointegrated pairs (WARN).", False),),
    evaluate_checks=f"{__name__}:pair_count_results",
    kinds=frozenset({"pandas"}),
    description="How many cointegrated pairs the partition has.",
)
EXTENDED = Pipeline("extended", [PIPELINE["correlation_matrix"], PIPELINE["cointegrated_pairs"], PAIR_COUNT])
PREFIX = "demo"


def _by_key(assets) -> dict[str, dg.AssetsDefinition]:
    return {a.key.to_user_string(): a for a in assets}


def test_the_added_stage_is_generated_with_its_input_dependency_and_check():
    strategy = StrategySettings()
    bare = _by_key(stage_assets(EXTENDED, EMBEDDED_DAILY, strategy))
    assert list(bare) == ["correlation_matrix", "cointegrated_pairs", "pair_count"]
    prefixed = _by_key(stage_assets(EXTENDED, EMBEDDED_DAILY, strategy, key_prefix=PREFIX))
    assert list(prefixed) == ["demo/correlation_matrix", "demo/cointegrated_pairs", "demo/pair_count"]
    added = prefixed["demo/pair_count"]
    assert added.keys_by_input_name["cointegrated_pairs"] == dg.AssetKey([PREFIX, "cointegrated_pairs"])
    spec = added.specs_by_key[added.key]
    assert {d.asset_key for d in spec.deps} == {dg.AssetKey("raw_bars"), dg.AssetKey([PREFIX, "cointegrated_pairs"])}
    assert all(d.partition_mapping == same_partition_mapping() for d in spec.deps)  # its own session only
    (check,) = added.check_specs
    assert (check.name, check.asset_key, check.blocking) == ("at_most_ten_pairs", added.key, False)
    assert check.partitions_def == EMBEDDED_DAILY
    assert added.backfill_policy == dg.BackfillPolicy.single_run()
    assert added.metadata_by_key[added.key]["pairs/history_sessions"] == strategy.reach(strategy.formation_window)
    assert spec.kinds == {"pandas"} and spec.description == PAIR_COUNT.description
    # the default pipeline's checks are those of the default graph
    assert [c.name for c in prefixed["demo/cointegrated_pairs"].check_specs] == [
        "correlation_above_min",
        "eg_pvalue_below_max",
    ]


def test_the_added_stage_materializes_one_partition_and_a_range(tmp_path, own_pairs_home):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    source = EmbeddedBarSource()
    resources = resources_for(url, source, home=own_pairs_home)
    strategy = resources["strategy"]
    preload_history(url, source, ["BBY", "HD", "KO", "PEP", "PG", "WMT"], "2022-12-14", strategy.history_sessions + 2)
    assets = [daily_asset("raw_bars"), *stage_assets(EXTENDED, EMBEDDED_DAILY, strategy, key_prefix=PREFIX)]
    selection = [f"{PREFIX}/{name}" for name in EXTENDED.names]
    one = dg.materialize(
        assets,
        selection=selection,
        partition_key=partition_key("2022-12-13", "consumer"),
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    (materialization,) = [
        e.event_specific_data.materialization
        for e in one.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey([PREFIX, "pair_count"])
    ]
    n_pairs = materialization.metadata["pairs"].value
    # a prefixed stage's outputs have their own folder (no clash with the bare graph's)
    stored = pd.read_parquet(own_pairs_home.outputs_dir / PREFIX / "pair_count" / "2022-12-13" / "consumer.parquet")
    assert stored["pairs"].tolist() == [n_pairs]
    assert not (own_pairs_home.outputs_dir / "pair_count").exists()
    assert n_pairs >= 1  # KO-PG is cointegrated on 2022-12-13 under the seed settings
    (evaluation,) = [e for e in one.get_asset_check_evaluations() if e.asset_key == dg.AssetKey([PREFIX, "pair_count"])]
    assert (evaluation.asset_key, evaluation.check_name, evaluation.passed) == (
        dg.AssetKey([PREFIX, "pair_count"]),
        "at_most_ten_pairs",
        n_pairs <= 10,
    )
    # a range run (single-run backfill) of the same stages: one output and one check per partition
    instance = dg.DagsterInstance.ephemeral()
    ranged = dg.materialize(
        assets,
        selection=selection,
        resources=resources,
        instance=instance,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: "2022-12-13|consumer",
            ASSET_PARTITION_RANGE_END_TAG: "2022-12-14|consumer",
        },
    )
    assert ranged.success
    key = dg.AssetKey([PREFIX, "pair_count"])
    counts = {
        str(e.partition): e.event_specific_data.materialization.metadata
        for e in ranged.get_asset_materialization_events()
        if e.asset_key == key
    }
    assert sorted(counts) == ["2022-12-13|consumer", "2022-12-14|consumer"]
    assert all(m["range_run"].value for m in counts.values())
    assert counts["2022-12-13|consumer"]["partitions"].value == 2
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(key, "at_most_ten_pairs"), limit=10
    )
    assert sorted(r.partition for r in records) == ["2022-12-13|consumer", "2022-12-14|consumer"]


def _stage(name: str, *inputs: str) -> StageSpec:
    return StageSpec(
        name=name,
        inputs=inputs,
        window=lambda s: 1,
        window_detail=lambda s: "1 session",
        compute=pair_count,
        description=name,
        kinds=frozenset(),
    )


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([_stage("a"), _stage("a")], "pipeline 'bad': stage 'a' is declared twice"),
        ([_stage("a"), _stage("b", "c")], "pipeline 'bad': stage 'b' input 'c' is no stage"),
        ([_stage("a", "b"), _stage("b", "a")], "pipeline 'bad': stage 'a' input 'b' is declared after it"),
        ([_stage("a", "a")], "pipeline 'bad': stage 'a' reads itself"),
        ([_stage("raw_bars")], "pipeline 'bad': stage name 'raw_bars' is the shared bars asset"),
        ([], "pipeline 'bad': no stages"),
    ],
)
def test_a_pipeline_that_cannot_be_built_is_refused_naming_the_stage(stages, message):
    with pytest.raises(PipelineError, match=message.replace("(", r"\(")):
        Pipeline("bad", stages)
