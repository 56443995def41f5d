"""walk_forward: replay the daily configs over a range of sessions, trade them, report beside the baseline.

Unpartitioned, in its own group: a walk-forward is an experiment defined by its run config (range,
sectors, costs, lag, strategy settings), not a slice of a dataset, and its answer is the total
across sectors. Each run writes ``<PAIRS_HOME>/walk_forward/<name>/`` and one MLflow run in
``pairs_trading/walk_forward``; the materialization shows the summary table. The numerics are
:mod:`pairs_assets.quant.walkforward` (the daily graph's own stage functions, no Dagster run per
session).
"""

import contextvars
import time
from collections.abc import Callable

import dagster as dg
import pandas as pd
from pydantic import Field

from pairs_assets import partitions
from pairs_assets.assets.common import fingerprint_of, read_panel
from pairs_assets.home import PairsHome
from pairs_assets.quant import rule
from pairs_assets.quant.walkforward.engine import (
    SELECTION_RANGE,
    WalkForwardError,
    WalkForwardSettings,
    required_history,
    run_walk_forward,
    strategy_histories,
    strategy_labels,
    with_reference,
)
from pairs_assets.quant.walkforward.ledger import trials_from_runs
from pairs_assets.quant.walkforward.metrics import BOOTSTRAP_BLOCK, BOOTSTRAP_RESAMPLES, DEFAULT_PERIODS, SUMMARY_KEYS
from pairs_assets.settings import StrategySettings
from pairs_assets.universe import Universe
from resources.bar_sources import BarSource
from resources.market_data import MarketDataStore
from resources.model_registry import ModelRegistry
from resources.walk_forward_outputs import output_dir, write_outputs

GROUP = "walk_forward"

#: Set by the ``pairs walk-forward`` command to draw a progress bar: called with (done, total).
PROGRESS: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar(
    "walk_forward_progress", default=None
)


class WalkForwardConfig(dg.Config):
    """Run config of ``walk_forward`` (the launchpad's ``ops: walk_forward: config:``)."""

    name: str = Field("default", description="Results land in <PAIRS_HOME>/walk_forward/<name>/.")
    start: str = Field("1995-01-03", description="First decision session (YYYY-MM-DD).")
    end: str = Field("2022-12-28", description="Last session (YYYY-MM-DD).")
    sectors: list[str] = Field([], description="Sectors; empty = all.")
    costs: list[float] = Field([0.0, 5.0, 10.0, 20.0], description="Basis points of traded notional per leg.")
    lag: int = Field(1, description="Execution lag in sessions: 1 (default) or 0 (comparison only).")
    on_drop: str = Field(
        rule.DEFAULT_ON_DROP, description="'keep' or 'exit' an open position whose pair leaves the config."
    )
    max_holding: int = Field(
        rule.DEFAULT_MAX_HOLDING, description="Sessions after which a position is closed (0 = no limit)."
    )
    n_trials: int | None = Field(
        None,
        description="Configurations tried (the deflated Sharpe's N); empty: counted by the trials ledger "
        "(the walk-forward runs recorded in MLflow that evaluated the selection range).",
    )
    selection: list[str] = Field(
        list(SELECTION_RANGE),
        description="Selection range [first, last] (development years): DSR there, PSR against 0 elsewhere.",
    )
    bootstrap_block: int = Field(
        BOOTSTRAP_BLOCK, description="Block length (sessions) of the Sharpe intervals' bootstrap."
    )
    bootstrap_resamples: int = Field(BOOTSTRAP_RESAMPLES, description="Resamples of the Sharpe intervals' bootstrap.")
    bootstrap_seed: int = Field(0, description="Seed of the Sharpe intervals' bootstrap.")
    min_trades: int = Field(10, description="Below this many trades Sharpe, t and DSR print as '–' with the count.")
    gru: bool = Field(False, description="Also trade the configs gated by each pair's GRU (strategy default_gru).")
    workers: int = Field(0, description="Processes replaying sectors side by side (0: one per CPU).")
    periods: list[list[str]] = Field(
        [list(p) for p in DEFAULT_PERIODS], description="Sub-periods: [label, first date, last date] each."
    )
    strategies: list[str] = Field(
        [],
        description="Strategies of the strategies file (pairs strategies list) walked forward side by side, "
        "beside the classical baseline; empty: the strategy resource's settings as 'default' (the legacy run).",
    )
    strategy_params: list[str] = Field(
        [],
        description="With strategies: NAME.KEY=VALUE parameter overrides (VALUE read as JSON, else a string), "
        "validated by the strategy's schema.",
    )

    def settings(self) -> WalkForwardSettings:
        return WalkForwardSettings(
            start=self.start,
            end=self.end,
            sectors=self.sectors or None,
            costs=self.costs,
            lag=self.lag,
            on_drop=self.on_drop,
            max_holding=self.max_holding,
            n_trials=self.n_trials,
            gru=self.gru,
            workers=self.workers or None,
            periods=[tuple(p) for p in self.periods],
            selection=tuple(self.selection),
            bootstrap_block=self.bootstrap_block,
            bootstrap_resamples=self.bootstrap_resamples,
            bootstrap_seed=self.bootstrap_seed,
            min_trades=self.min_trades,
        )


def resolve_strategies(names, overrides=()) -> list:
    """The strategies file's strategies ``names`` (in order) with ``NAME.KEY=VALUE`` overrides, read
    now (:func:`~pairs_assets.strategies.registry.load_registry`: an edit of the file counts at the
    next run); a ``StrategyPluginError`` in one line for an unknown name or a bad value."""
    import json

    from pairs_assets.strategies.base import StrategyPluginError
    from pairs_assets.strategies.registry import load_registry

    registry = load_registry()
    by_name: dict[str, dict] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot or not field:
            raise StrategyPluginError(f"strategy parameter {item!r}: expected NAME.KEY=VALUE")
        if name not in names:
            raise StrategyPluginError(
                f"strategy parameter {item!r}: {name!r} is not one of the strategies walked forward ({', '.join(names)})"
            )
        try:
            by_name.setdefault(name, {})[field] = json.loads(value)
        except json.JSONDecodeError:
            by_name.setdefault(name, {})[field] = value
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if list(names).count(n) > 1})
        raise StrategyPluginError(f"strategy {twice[0]!r} is named twice")
    return [registry.build(name, by_name.get(name)) for name in names]


def plugin_run_params(strategies, settings: WalkForwardSettings) -> dict:
    """The MLflow params of a walk-forward of strategy plugins, what the trials ledger reads back
    (:func:`~pairs_assets.quant.walkforward.ledger.trials_from_runs`): ``strategies`` (the names, the
    baseline included), per strategy ``strategies.<name>.class``, ``.selected``, ``.labels`` (its
    rows) and ``strategy.<name>.<parameter>`` (its trial parameters)."""
    labels = strategy_labels(with_reference(strategies, settings), settings)
    plugins = list(dict.fromkeys(labels.values()))
    params = {"strategies": ",".join(p.name for p in plugins)}
    for plugin in plugins:
        params[f"strategies.{plugin.name}.class"] = f"{type(plugin).__module__}:{type(plugin).__qualname__}"
        params[f"strategies.{plugin.name}.selected"] = plugin.selected
        params[f"strategies.{plugin.name}.labels"] = ",".join(
            label for label, owner in labels.items() if owner is plugin
        )
        for k, v in plugin.trial_params().items():
            params[f"strategy.{plugin.name}.{k}"] = v
    return params


def panel_sessions(settings: WalkForwardSettings, strategy, history_start: str) -> pd.DatetimeIndex:
    """The sessions whose bars a walk-forward reads: the range and the longest window before it (+1),
    none before ``history_start``. ``strategy``: the legacy run's settings, or the strategies
    (:func:`~pairs_assets.quant.walkforward.engine.required_history`)."""
    available = partitions.sessions_in_range(history_start, settings.end)
    before = available[available < pd.Timestamp(settings.start)]
    keep = required_history(strategy, settings) + 1
    return available[max(0, len(before) - keep) :]


def check_history(settings: WalkForwardSettings, strategy, history_start: str) -> pd.DatetimeIndex:
    """The panel's sessions (:func:`panel_sessions`), or a ``WalkForwardError`` in one line when the
    range holds no session or the longest window needs more sessions before ``settings.start`` than
    the history (from ``history_start``) has — naming the earliest start that works, or, when no
    start in the calendar does (``formation_window=100000``), the windows to lower."""
    sessions = panel_sessions(settings, strategy, history_start)
    if sessions.empty or sessions[-1] < pd.Timestamp(settings.start):
        raise WalkForwardError(f"the range {settings.start} → {settings.end} holds no NYSE session")
    needed = required_history(strategy, settings) + 1
    before = int((sessions < pd.Timestamp(settings.start)).sum())
    if before < needed:
        calendar = partitions.sessions_in_range(history_start, partitions.nyse_calendar().last_session)
        if needed < len(calendar):
            remedy = f"start on or after {calendar[needed].date()}"
        elif isinstance(strategy, (list, tuple)):
            histories = strategy_histories(with_reference(strategy, settings), settings)
            name = max(histories, key=histories.get)
            raise WalkForwardError(
                f"strategy {name!r}: its longest window needs {histories[name] + 1} sessions of bars before the "
                f"range start {settings.start} and no start can give them: the calendar holds {len(calendar)} "
                f"sessions from {history_start}; lower its windows"
            )
        else:
            remedy = (
                f"no start can: the calendar holds {len(calendar)} sessions from {history_start}; lower the strategy "
                f"windows (formation_window {strategy.formation_window}, garch_window {strategy.garch_window}, "
                f"backtest_window {strategy.backtest_window})"
            )
        whose = ""
        if isinstance(strategy, (list, tuple)):
            histories = strategy_histories(with_reference(strategy, settings), settings)
            whose = f" (strategy {max(histories, key=histories.get)!r})"
        raise WalkForwardError(
            f"the range starts {settings.start} but the longest window{whose} needs {needed} sessions of bars "
            f"before it and the history (from {history_start}) has {before}; {remedy}"
        )
    return sessions


#: The baseline's trading periods are counted in NYSE sessions from this fixed date (the embedded
#: data's first session), never from ``--start`` or the history-start setting.
BASELINE_EPOCH = "1990-01-02"


def baseline_session_number(day) -> int:
    """NYSE sessions from :data:`BASELINE_EPOCH` to ``day`` (negative before it)."""
    day, epoch = pd.Timestamp(day), pd.Timestamp(BASELINE_EPOCH)
    if day >= epoch:
        return len(partitions.sessions_in_range(epoch, day)) - 1
    return -(len(partitions.sessions_in_range(day, epoch)) - 1)


def resolve_sectors(settings: WalkForwardSettings, uni: Universe) -> dict[str, tuple[str, ...]]:
    chosen = settings.sectors or uni.sector_names
    unknown = sorted(set(chosen) - set(uni.sector_names))
    if unknown:
        raise WalkForwardError(f"unknown sector(s) {', '.join(unknown)} (known: {', '.join(uni.sector_names)})")
    return {sector: uni.symbols(sector) for sector in sorted(set(chosen))}


def run_and_record(
    *,
    home: PairsHome,
    store: MarketDataStore,
    source: str,
    strategy: StrategySettings,
    settings: WalkForwardSettings,
    registry: ModelRegistry | None,
    name: str,
    dagster_run_id: str = "",
    log: Callable[[str], None] = print,
    strategies: list | None = None,
    strategies_fingerprint: str = "",
) -> tuple:
    """Read the panels, run, write ``<home>/walk_forward/<name>/`` and the MLflow run.

    ``strategies``: the plugins walked forward side by side (None: the legacy run of ``strategy``
    beside the baseline); ``strategies_fingerprint``: the strategies file's (a run tag).

    Returns (result, files, mlflow run id, input fingerprint).
    """
    history_start = home.history_start
    target = output_dir(home.home, name)
    sectors = resolve_sectors(settings, home.universe())
    sessions = check_history(settings, strategy if strategies is None else list(strategies), history_start)
    panels = {}
    for sector, symbols in sectors.items():
        panel = read_panel(store, source, sector, symbols, sessions, with_bars=True)
        have = panel.closes.notna().all(axis=1)
        if not have.any():
            raise WalkForwardError(
                f"sector {sector}: the store holds no bars from {source!r} in {sessions[0].date()} → {sessions[-1].date()}; "
                f"load them first (pairs load-bars --start {sessions[0].date()} --end {sessions[-1].date()})"
            )
        last = panel.closes.index[have][-1]
        if last < pd.Timestamp(settings.end) and last < sessions[-1]:
            raise WalkForwardError(
                f"sector {sector}: the range ends {settings.end} but the bars end on {last.date()} "
                f"(source {source!r}); end the range on or before {last.date()}"
            )
        panels[sector] = panel
    total = sum(
        len(
            p.closes.index[
                (p.closes.index >= pd.Timestamp(settings.start)) & (p.closes.index <= pd.Timestamp(settings.end))
            ]
        )
        for p in panels.values()
    )
    reporter = PROGRESS.get()
    done = 0
    last_logged = [time.perf_counter()]

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if reporter is not None:
            reporter(done, total)
        elif time.perf_counter() - last_logged[0] > 30:
            last_logged[0] = time.perf_counter()
            log(f"walk-forward: {done}/{total} sector-sessions")

    # the trials ledger: every configuration recorded on the selection range (this run's added by the engine)
    ledger = trials_from_runs(registry.walk_forward_runs(), settings.selection) if registry is not None else []
    t0 = time.perf_counter()
    # the exchange calendar's formation schedule (a fixed epoch, not the history start): the daily graph's
    if strategies is None:
        schedule = partitions.formation_schedule(
            strategy.reselect_every, settings.end, phase=strategy.formation_phase, since=history_start
        )
    else:  # each strategy's own formation calendar
        schedule = {}
        for plugin in strategies:
            calendar = plugin.formation_calendar()
            if calendar is not None:
                every, phase = calendar
                schedule[plugin.name] = partitions.formation_schedule(
                    every, settings.end, phase=phase, since=history_start
                )
    result = run_walk_forward(
        panels,
        sectors,
        partitions.next_session,
        strategy,
        settings,
        formation_of=schedule,
        progress=progress,
        ledger=ledger,
        session_number=baseline_session_number,
        strategies=strategies,
    )
    result.seconds["total"] = round(time.perf_counter() - t0, 2)
    fingerprint = fingerprint_of(
        {
            s: p.bars.fingerprint()
            if p.row_hashes is None and p.bars is not None
            else p.fingerprint(list(sectors[s]), len(p.closes) - 1, len(p.closes))
            for s, p in panels.items()
        },
        source,
        strategy.model_dump(mode="json")
        if strategies is None
        else {p.name: [type(p).__qualname__, p.params.model_dump(mode="json")] for p in strategies},
        settings.model_dump(mode="json"),
    )
    from pairs_assets.reporting import equity_figure

    cost = next((c for c in settings.costs if c > 0), settings.costs[0])
    figure = equity_figure(result.daily, cost, f"walk-forward {name}: {settings.start} → {settings.end}")
    files = write_outputs(result, target, figure)
    run_id = None
    if registry is not None:
        totals = result.summary[result.summary["sector"] == "all"]
        metrics = {
            f"{r.strategy}.{r.cost_bp:g}bp.{r.period}.{key}": getattr(r, key)
            for r in totals.itertuples()
            for key in (*SUMMARY_KEYS, "vs_baseline", "vs_baseline_low", "vs_baseline_high")
        }
        metrics["trials.n"] = result.trials.n_trials
        if strategies is None:
            strategy_params = {f"strategy.{k}": v for k, v in strategy.model_dump(mode="json").items()}
        else:
            strategy_params = plugin_run_params(strategies, settings)
        params = {
            **{f"wf.{k}": v for k, v in settings.model_dump(mode="json").items()},
            **strategy_params,
            "bar_source": source,
            "input_fingerprint": fingerprint,
            "trials.source": result.trials.source,
        }
        run_id = registry.log_walk_forward(
            run_name=f"walk_forward_{name}",
            params=params,
            metrics=metrics,
            artifacts_dir=target,
            tags={
                "walk_forward_name": name,
                "dagster_run_id": dagster_run_id,
                "input_fingerprint": fingerprint,
                **({"strategies_fingerprint": strategies_fingerprint} if strategies_fingerprint else {}),
            },
        )
    return result, files, run_id, fingerprint


def record_robustness(
    *,
    home,
    name: str,
    table: pd.DataFrame,
    settings: WalkForwardSettings,
    phase_step: int,
    registry: ModelRegistry | None,
) -> tuple:
    """Write ``<home>/walk_forward/<name>.robustness/`` (robustness.csv, robustness.png: the heat-map at
    the first non-zero cost) all at once, and log it as one MLflow run in ``pairs_trading/walk_forward``
    (its params carry no walk-forward range, so the trials ledger does not count it: the variants'
    own runs are the trials). Returns (folder, MLflow run id or None)."""
    import os
    import shutil
    from pathlib import Path

    from pairs_assets.reporting import robustness_figure

    target = output_dir(home, f"{name}.robustness")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    cost = next((c for c in settings.costs if c > 0), settings.costs[0])
    try:
        table.to_csv(staging / "robustness.csv", index=False, float_format="%.6g")
        figure = robustness_figure(
            table, cost, f"walk-forward robustness {name}: {settings.start} → {settings.end}, all sectors"
        )
        figure.savefig(staging / "robustness.png", dpi=110, metadata={"Software": None})
        import matplotlib.pyplot as plt

        plt.close(figure)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    run_id = None
    if registry is not None:
        at = table[table["cost_bp"] == cost]
        metrics = {
            f"{r.variant.replace('=', ':')}.{r.period}.{cost:g}bp.{key}": getattr(r, key)
            for r in at.itertuples()
            for key in ("sharpe", "sharpe_low", "sharpe_high", "trades")
        }
        variants = list(dict.fromkeys(table["variant"]))
        run_id = registry.log_walk_forward(
            run_name=f"walk_forward_robustness_{name}",
            params={
                "robustness.name": name,
                "robustness.variants": ",".join(variants),
                "robustness.phase_step": phase_step,
                "robustness.range": f"{settings.start} → {settings.end}",
                "robustness.cost_bp": cost,
                "robustness.periods": ",".join(
                    f"{p}={label}" for p, label in dict.fromkeys(zip(table["period"], table["period_label"]))
                ),
            },
            metrics=metrics,
            artifacts_dir=Path(target),
            tags={"walk_forward_name": f"{name}.robustness", "robustness": "true"},
        )
    return target, run_id


def _table(summary: pd.DataFrame) -> dg.MetadataValue:
    shown = summary[summary["period"] == "full"]
    columns = [
        "strategy",
        "sector",
        "cost_bp",
        "period",
        "sharpe",
        "sharpe_low",
        "sharpe_high",
        "vs_baseline",
        "ann_return",
        "ann_vol",
        "max_drawdown",
        "trades",
        "hit_rate",
        "t_stat",
        "psr",
        "deflated_sharpe",
    ]
    schema = dg.TableSchema(
        columns=[dg.TableColumn(c, "string" if c in ("strategy", "sector", "period") else "float") for c in columns]
    )
    records = [
        dg.TableRecord(
            {
                c: (v if isinstance(v, str) else (None if pd.isna(v) else round(float(v), 4)))
                for c, v in zip(columns, row)
            }
        )
        for row in shown[columns].itertuples(index=False)
    ]
    return dg.MetadataValue.table(records, schema=schema)


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "mlflow"},
    description="Walk-forward: the daily trading configs of every session of a range (the daily graph's own "
    "stage functions), traded with execution lag and costs, summarised per sector, in total and by "
    "sub-period beside the classical Engle-Granger baseline; files under <PAIRS_HOME>/walk_forward/<name>/ "
    "and an MLflow run in pairs_trading/walk_forward.",
)
def walk_forward(
    context: dg.AssetExecutionContext,
    config: WalkForwardConfig,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    model_registry: ModelRegistry,
    home: PairsHome,
) -> dg.MaterializeResult:
    settings = config.settings()
    plugins, registry_fingerprint, failures = None, "", {}
    if config.strategies:
        from pairs_assets.strategies.registry import load_registry

        plugins = resolve_strategies(config.strategies, config.strategy_params)
        registry = load_registry()
        registry_fingerprint = registry.fingerprint
        # shown in the UI: the entry points that failed to load (the others ran)
        failures = {f.name: f.reason for f in registry.failures}
        if failures:
            context.log.warning(
                "strategy entry points that failed to load: " + "; ".join(f"{k}: {v}" for k, v in failures.items())
            )
    elif config.strategy_params:
        raise WalkForwardError("strategy_params need strategies: name the strategies they set")
    result, files, run_id, fingerprint = run_and_record(
        home=home,
        store=store,
        source=bar_source.source_name,
        strategy=strategy,
        settings=settings,
        registry=model_registry,
        name=config.name,
        dagster_run_id=context.run_id,
        log=context.log.info,
        strategies=plugins,
        strategies_fingerprint=registry_fingerprint,
    )
    summary = result.summary
    headline = summary[(summary["sector"] == "all") & (summary["period"] == "full")]
    return dg.MaterializeResult(
        metadata={
            "summary": _table(summary),
            "dagster/row_count": len(summary),
            "range": f"{settings.start} → {settings.end}",
            "sectors": ", ".join(result.configs),
            "costs_bp": ", ".join(f"{c:g}" for c in settings.costs),
            "lag": settings.lag,
            "bars": result.bars,
            "configs_built": sum(result.configs.values()),
            "config_pair_days": sum(result.config_pairs.values()),
            "gru_gate": dg.MetadataValue.json(result.gru) if result.gru else "off",
            "trials": f"{result.trials.n_trials} ({result.trials.source})",
            "strategies": ", ".join(dict.fromkeys(result.summary["strategy"])),
            **({"strategies_fingerprint": registry_fingerprint} if registry_fingerprint else {}),
            **({"strategy_entry_point_failures": dg.MetadataValue.json(failures)} if failures else {}),
            "sharpe_default_vs_baseline": dg.MetadataValue.md(
                "\n".join(
                    f"- {r.strategy} @ {r.cost_bp:g} bp: Sharpe {r.sharpe:.2f} [{r.sharpe_low:.2f}, {r.sharpe_high:.2f}], "
                    f"{int(r.trades)} trades"
                    for r in headline.itertuples()
                )
            ),
            "output_dir": dg.MetadataValue.path(str(files["summary"].parent)),
            "equity_plot": dg.MetadataValue.path(str(files.get("equity", ""))),
            "mlflow_run_id": run_id or "",
            "input_fingerprint": fingerprint,
            "elapsed_seconds": result.seconds.get("total", 0.0),
        }
    )
