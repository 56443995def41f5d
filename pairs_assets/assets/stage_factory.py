"""The daily stage assets, generated from a pipeline (:class:`pairs_assets.quant.pipeline.Pipeline`).

One asset per :class:`~pairs_assets.quant.pipeline.StageSpec`, on the daily partitions: its upstream
stages as inputs and ``raw_bars`` as a dependency, each through the same-session mapping
(:func:`pairs_assets.partitions.same_partition_mapping`); its declared history
(:func:`pairs_assets.assets.common.history_window_metadata`); its checks scoped to the partitions;
``BackfillPolicy.single_run()``; the group, kinds and description. The two paths every stage has are
written here once:

* a one-partition run reads its windows from the store (:class:`~pairs_assets.assets.common.WindowReader`)
  and calls the stage's ``compute``;
* a range run (a single-run backfill, :mod:`pairs_assets.assets.ranges`) reads each sector's closes
  once, calls ``compute`` once per formation session (or per session) — or the stage's
  ``compute_range`` hook with all of them — records each partition's own metadata and check
  evaluations, and returns ``{partition key: value}``.

``key_prefix`` None gives today's bare keys; a prefix gives ``<prefix>/<stage>`` keys whose inputs
are the prefixed upstream stages (``raw_bars`` stays the shared, unprefixed asset).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from pairs_assets import checks, partitions
from pairs_assets.assets import ranges
from pairs_assets.assets.common import GROUP, WindowReader, history_window_metadata, partition_parts, stopwatch
from pairs_assets.instance.liveness import ensure_run_open
from pairs_assets.quant.pipeline.spec import (
    RAW_BARS,
    Json,
    Md,
    Partition,
    PathValue,
    Pipeline,
    StageOutput,
    StageRun,
    StageSpec,
)
from resources.io_manager import atomic_write_bytes

#: Run tags a stage may record (the schedule's pairs/strategies and pairs/strategies_fingerprint).
STRATEGY_TAG_PREFIX = "pairs/strategies"

#: What every stage reads: the store, the bar source, the strategy (its settings) and the home.
BASE_RESOURCES = ("store", "bar_source", "strategy", "home")
#: The resource of the default strategy's settings; a plugin's stages read ``strategy__<name>``
#: (:func:`pairs_assets.assets.strategy_assets.plugin_resources`), whose ``params()`` they get.
STRATEGY_KEY = "strategy"


def _base_resources(strategy_key: str) -> tuple[str, ...]:
    return tuple(strategy_key if name == STRATEGY_KEY else name for name in BASE_RESOURCES)


def stage_assets(
    pipeline: Pipeline,
    daily: dg.MultiPartitionsDefinition,
    strategy,
    *,
    key_prefix: str | None = None,
    group_name: str = GROUP,
    strategy_key: str = STRATEGY_KEY,
) -> list[dg.AssetsDefinition]:
    """One asset per stage of ``pipeline``, in its order, with ``strategy``'s lookbacks; the stages
    read their settings from the resource ``strategy_key``."""
    return [
        stage_asset(spec, daily, strategy, key_prefix=key_prefix, group_name=group_name, strategy_key=strategy_key)
        for spec in pipeline
    ]


def _key(name: str, key_prefix: str | None) -> dg.AssetKey:
    return dg.AssetKey([key_prefix, name] if key_prefix else [name])


def metadata_value(value):
    """A stage's plain metadata marker as Dagster metadata (other values as they are)."""
    if isinstance(value, Md):
        return dg.MetadataValue.md(value.text)
    if isinstance(value, Json):
        return dg.MetadataValue.json(value.value)
    if isinstance(value, PathValue):
        return dg.MetadataValue.path(value.path)
    return value


def _metadata(metadata: dict) -> dict:
    return {k: metadata_value(v) for k, v in metadata.items()}


def stage_asset(
    spec: StageSpec,
    daily: dg.MultiPartitionsDefinition,
    strategy,
    *,
    key_prefix: str | None = None,
    group_name: str = GROUP,
    strategy_key: str = STRATEGY_KEY,
) -> dg.AssetsDefinition:
    """The asset of one stage (see the module docstring)."""
    key = _key(spec.name, key_prefix)
    same = partitions.same_partition_mapping
    check_specs = checks.check_specs(
        [
            dg.AssetCheckSpec(name=c.name, asset=key, description=c.description, blocking=c.blocking)
            for c in spec.checks
        ],
        daily,
    )
    body = _body(spec, key, strategy_key)
    return dg.asset(
        name=spec.name,
        key_prefix=[key_prefix] if key_prefix else None,
        partitions_def=daily,
        ins={name: dg.AssetIn(key=_key(name, key_prefix), partition_mapping=same()) for name in spec.inputs} or None,
        deps=[dg.AssetDep(RAW_BARS, partition_mapping=same())],
        metadata=history_window_metadata(spec.history_sessions(strategy), spec.window_detail(strategy)),
        check_specs=check_specs or None,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group_name,
        kinds=set(spec.kinds),
        description=spec.description,
        required_resource_keys={*_base_resources(strategy_key), *spec.resources},
    )(body)


def _stage_run(
    context: dg.AssetExecutionContext, spec: StageSpec, key: dg.AssetKey, strategy_key: str = STRATEGY_KEY
) -> StageRun:
    resources = {name: getattr(context.resources, name) for name in (*_base_resources(strategy_key), *spec.resources)}
    asset_path = "/".join(key.path)
    strategy = resources[strategy_key]
    return StageRun(
        # a plugin's resource holds its name and params: the stages get the validated params
        strategy=strategy if strategy_key == STRATEGY_KEY else strategy.params(),
        resources=resources,
        log=context.log,
        run_id=context.run_id,
        # its own previous output, through the run's IO manager (the one that wrote it)
        previous=lambda partition_key: context.resources.io_manager.load_partition(asset_path, partition_key),
        ensure_open=lambda what: ensure_run_open(context.instance, context.run_id, what),
        write_bytes=lambda path, payload: atomic_write_bytes(Path(path), payload),
        tags={k: v for k, v in context.run.tags.items() if k.startswith(STRATEGY_TAG_PREFIX)},
    )


def _check_results(spec: StageSpec, key: dg.AssetKey, output: StageOutput) -> list[dg.AssetCheckResult]:
    if spec.evaluate_checks is None:
        return []
    module, name = spec.evaluate_checks.split(":")
    results = getattr(importlib.import_module(module), name)(*output.check_args)
    if key == dg.AssetKey(spec.name):
        return results
    return [  # a prefixed stage: the results are its own asset's
        dg.AssetCheckResult(
            check_name=r.check_name,
            asset_key=key,
            passed=r.passed,
            severity=r.severity,
            metadata=r.metadata,
            description=r.description,
        )
        for r in results
    ]


def _body(spec: StageSpec, key: dg.AssetKey, strategy_key: str = STRATEGY_KEY):
    def stage(context, **inputs) -> Iterator:  # context: dg.AssetExecutionContext
        run = _stage_run(context, spec, key, strategy_key)
        if not context.has_partition_key:  # a range run (single-run backfill), see assets/ranges.py
            yield from _range(context, run, spec, key, inputs)
            return
        date, sector = partition_parts(context)
        store, home = run.resources["store"], run.resources["home"]
        with stopwatch() as timer:
            windows = WindowReader(store, run.resources["bar_source"].source_name, home=home)
            output = spec.compute(run, Partition(windows, date, sector, inputs))
            if spec.after_partition is not None:
                spec.after_partition(run, date, sector, output.value)
        metadata = {**_metadata(output.metadata), "elapsed_seconds": timer["seconds"]}
        if spec.stores_output:
            yield dg.Output(output.value, metadata=metadata)
        else:
            yield dg.MaterializeResult(metadata=metadata)
        yield from _check_results(spec, key, output)

    stage.__name__ = spec.name
    return stage


def _range(context, run: StageRun, spec: StageSpec, key: dg.AssetKey, inputs: dict) -> Iterator:
    with stopwatch() as timer:
        sector_ranges = ranges.sector_ranges(
            context,
            run.resources["store"],
            run.resources["bar_source"].source_name,
            run.strategy,
            run.resources["home"],
            lookback=spec.window(run.strategy),
            longest_window_ends_at_as_of=spec.window_ends_at_as_of,
        )
        groups = [
            (rng, dates)
            for rng in sector_ranges
            for dates in ([[s] for s in rng.sessions] if spec.per_session else rng.cohorts().values())
        ]
        items = [
            Partition(
                rng.windows,
                str(dates[0].date()),
                rng.sector,
                {name: value[rng.key(dates[0])] for name, value in inputs.items()},
                symbols=rng.symbols,
                formation=rng.formation[dates[0]],
                formations=tuple(sorted(set(rng.formation.values()))),
            )
            for rng, dates in groups
        ]
        if spec.compute_range is not None:
            outputs, counts = spec.compute_range(run, items)
        else:
            outputs, counts = [spec.compute(run, item) for item in items], {}
        by_key = {rng.key(d): output for (rng, dates), output in zip(groups, outputs) for d in dates}
        if spec.after_partition is not None:
            for rng in sector_ranges:
                for session in rng.sessions:
                    spec.after_partition(run, str(session.date()), rng.sector, by_key[rng.key(session)].value)
        ranges.record_partition_metadata(context, {k: _metadata(o.metadata) for k, o in by_key.items()})
    values = {k: o.value for k, o in by_key.items()}
    summary = spec.range_summary(run, values, counts) if spec.range_summary is not None else {}
    metadata = ranges.range_metadata(sector_ranges, timer["seconds"], **_metadata(summary))
    if spec.stores_output:
        yield dg.Output(values, metadata=metadata)
    else:
        yield dg.MaterializeResult(metadata=metadata)
    if spec.checks:
        yield from ranges.check_outputs(context)
        check_specs = [dg.AssetCheckSpec(name=c.name, asset=key, blocking=c.blocking) for c in spec.checks]
        # evaluated once per computed output (a formation session's), recorded on each of its partitions
        results = [_check_results(spec, key, output) for output in outputs]
        by_output = {id(output): r for output, r in zip(outputs, results)}
        yield from ranges.check_evaluations(context, check_specs, {k: by_output[id(o)] for k, o in by_key.items()})
