"""The trials ledger: how many configurations were evaluated on the selection range, and how their Sharpes spread.

The deflated Sharpe ratio (Bailey & López de Prado 2014) asks two numbers of the research that
chose a strategy: N, the number of configurations tried, and V, the variance of their Sharpe
ratios. Both are counted here from what every walk-forward run records (its MLflow params and
metrics), not typed by hand:

* a **trial** is one distinct configuration — every strategy setting (``strategy.*``), the
  walk-forward settings that change the trades (``lag``, ``on_drop``, ``max_holding``) and the
  strategy variant (``default``, or ``default_gru`` with the GRU gate) — evaluated on the
  selection range (the development years, 1995-01-03 → 2010-12-31 by default);
* a run evaluated the selection range when its full range, or one of its sub-periods clipped to its
  range, starts and ends within :data:`RANGE_SLACK_DAYS` calendar days of the selection range's
  bounds (a run from 1995-03-23 for the GRU's history counts; a run on 2003–2010 alone does not);
  its Sharpe there is the total's (``all`` sectors) at each cost (0 for a configuration that never
  traded: its Sharpe is undefined, it is still a trial);
* the same configuration run twice is one trial (the latest run's Sharpe); the current run is a
  trial when it evaluates the selection range;
* V at a cost is the sample variance (ddof 1) of the trials' Sharpe ratios at that cost, in
  per-period units (annualised²/periods_per_year); with fewer than two trials V is undefined and
  the DSR falls back to the estimator's own variance (:func:`~.metrics.deflated_sharpe_ratio`).

Pure: the records come in as plain dicts (see :func:`trials_from_runs`); reading MLflow is the
registry resource's job.

References: Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", Journal of Portfolio
Management 40(5).
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "NEUTRAL_DEFAULTS",
    "RANGE_SLACK_DAYS",
    "TRADE_SETTINGS",
    "Trial",
    "TrialCount",
    "count_trials",
    "evaluated_label",
    "trial_key",
    "trials_from_runs",
]

#: A run "evaluated" the selection range if its bounds are this close to the range's (calendar days).
RANGE_SLACK_DAYS = 93
#: The walk-forward settings that change the trades (besides the strategy's own settings).
TRADE_SETTINGS = ("lag", "on_drop", "max_holding")
#: Strategy settings added after runs were recorded, at the value those runs had implicitly: left out
#: of a trial's identity at that value, so a run recorded before the setting existed and one after
#: with the same configuration are one trial (``formation_phase`` 0: the epoch's own blocks, which the
#: default home's history start of 1990-01-02 always gave).
NEUTRAL_DEFAULTS = {"formation_phase": "0"}
#: Strategies of a run that are trials (the baseline is fixed in advance, not selected).
_TRIAL_STRATEGIES = ("default", "default_gru")


@dataclass(frozen=True)
class Trial:
    """One configuration evaluated on the selection range.

    Attributes
    ----------
    key : str
        :func:`trial_key` of the configuration.
    sharpe : dict of float to float
        Annualised Sharpe ratio of the total on the selection range, per cost (bp per leg).
    run_id : str
        Where it was recorded ("" for the current run).
    """

    key: str
    sharpe: dict[float, float]
    run_id: str = ""


@dataclass(frozen=True)
class TrialCount:
    """The deflated Sharpe's inputs.

    Attributes
    ----------
    n_trials : int
        N.
    variance : dict of float to float
        V per cost, per-period units (NaN where fewer than two trials have a Sharpe at that cost).
    source : str
        ``"ledger"`` (counted), ``"override"`` (``--trials``) or ``"none"`` (no trial recorded).
    trials : list of Trial
        The trials counted (empty with an override and no ledger).
    """

    n_trials: int
    variance: dict[float, float] = field(default_factory=dict)
    source: str = "ledger"
    trials: list[Trial] = field(default_factory=list)

    def sharpe_sd(self, cost: float, periods_per_year: int = 252) -> float:
        """Standard deviation of the trials' annualised Sharpe ratios at ``cost`` (NaN if unknown)."""
        value = self.variance.get(float(cost), math.nan)
        return math.sqrt(value * periods_per_year) if math.isfinite(value) else math.nan


def trial_key(strategy_params: Mapping[str, object], trade_settings: Mapping[str, object], variant: str) -> str:
    """A configuration's identity: a hash of its strategy settings, trade settings and variant.

    Parameters
    ----------
    strategy_params : mapping
        Strategy setting → value (``StrategySettings.model_dump(mode="json")``, or the ``strategy.*``
        params of a run without the prefix); values are compared as ``str(value)``.
    trade_settings : mapping
        At least :data:`TRADE_SETTINGS`.
    variant : str
        ``"default"`` or ``"default_gru"``.

    Returns
    -------
    str
        16 hex digits.
    """
    items = sorted((f"strategy.{k}", str(v)) for k, v in strategy_params.items() if NEUTRAL_DEFAULTS.get(k) != str(v))
    items += [(f"wf.{k}", str(trade_settings[k])) for k in TRADE_SETTINGS]
    items.append(("variant", variant))
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16]


def evaluated_label(
    run_start, run_end, periods: Iterable[tuple[str, object, object]], selection: tuple[object, object]
) -> str | None:
    """Which period of a run covers the selection range: ``"full"``, a sub-period's label, or None.

    Parameters
    ----------
    run_start, run_end
        The run's range.
    periods : iterable of (label, first, last)
        Its sub-periods.
    selection : (first, last)
        The selection range.

    Returns
    -------
    str or None
        The first of ``full`` and the sub-periods whose bounds, clipped to the run's range, lie
        within :data:`RANGE_SLACK_DAYS` of the selection range's.
    """
    start, end = pd.Timestamp(run_start), pd.Timestamp(run_end)
    first, last = pd.Timestamp(selection[0]), pd.Timestamp(selection[1])
    slack = pd.Timedelta(days=RANGE_SLACK_DAYS)
    for label, lo, hi in [("full", start, end), *periods]:
        lo, hi = max(pd.Timestamp(lo), start), min(pd.Timestamp(hi), end)
        if abs(lo - first) <= slack and abs(hi - last) <= slack:
            return str(label)
    return None


def _literal(value, default):
    if not isinstance(value, str):
        return value if value is not None else default
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def trials_from_runs(runs: Iterable[Mapping], selection: tuple[object, object]) -> list[Trial]:
    """The trials recorded by earlier walk-forward runs.

    Parameters
    ----------
    runs : iterable of mapping
        Each ``{"run_id": str, "start_time": number, "params": {name: str}, "metrics": {name: float}}``
        as the walk-forward logs them: params ``wf.<setting>`` and ``strategy.<setting>`` (a run of
        strategy plugins: ``strategies`` = their names, ``strategies.<name>.selected`` and
        ``.labels``, ``strategy.<name>.<parameter>``), metrics ``<label>.<cost>bp.<period>.sharpe``
        of the total.
    selection : (first, last)
        The selection range.

    Returns
    -------
    list of Trial
        One per distinct configuration that evaluated the selection range (the latest run of it),
        in order of first appearance. Runs missing the settings are skipped.
    """
    latest: dict[str, tuple[float, Trial]] = {}
    order: list[str] = []
    for run in runs:
        params, metrics = run.get("params", {}), run.get("metrics", {})
        try:
            start, end = params["wf.start"], params["wf.end"]
            trade = {k: params[f"wf.{k}"] for k in TRADE_SETTINGS}
        except KeyError:
            continue
        periods = [tuple(p) for p in _literal(params.get("wf.periods"), [])]
        label = evaluated_label(start, end, periods, selection)
        if label is None:
            continue
        names = [n for n in str(params.get("strategies", "")).split(",") if n]
        if names:  # a run of strategy plugins: each selected strategy's labels, keyed by its parameters
            variants = []
            for name in names:
                if str(params.get(f"strategies.{name}.selected", "True")).lower() != "true":
                    continue
                prefix = f"strategy.{name}."
                own = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
                labels = str(params.get(f"strategies.{name}.labels", name)).split(",")
                variants.extend((label, own) for label in labels if label)
        else:
            strategy = {k[len("strategy.") :]: v for k, v in params.items() if k.startswith("strategy.")}
            gru = str(params.get("wf.gru", "False")).lower() == "true"
            variants = [(variant, strategy) for variant in _TRIAL_STRATEGIES[: 2 if gru else 1]]
        for variant, strategy in variants:
            sharpe = {}
            prefix = f"{variant}."
            for suffix, zero_trades in ((f"bp.{label}.sharpe", False), (f"bp.{label}.trades", True)):
                for name, value in metrics.items():
                    if name.startswith(prefix) and name.endswith(suffix):
                        try:
                            cost = float(name[len(prefix) : -len(suffix)])
                        except ValueError:
                            continue
                        if not zero_trades:
                            sharpe[cost] = float(value)
                        elif float(value) == 0.0:
                            sharpe.setdefault(cost, 0.0)  # never traded: a trial that earned nothing
            if not sharpe:
                continue
            key = trial_key(strategy, trade, variant)
            when = float(run.get("start_time") or 0.0)
            if key not in latest:
                order.append(key)
            if key not in latest or when >= latest[key][0]:
                latest[key] = (when, Trial(key, sharpe, str(run.get("run_id", ""))))
    return [latest[k][1] for k in order]


def count_trials(
    trials: Iterable[Trial],
    current: Iterable[Trial] = (),
    override: int | None = None,
    periods_per_year: int = 252,
) -> TrialCount:
    """N and V for the deflated Sharpe ratio.

    Parameters
    ----------
    trials : iterable of Trial
        From the ledger (:func:`trials_from_runs`).
    current : iterable of Trial
        The current run's trials (replace a recorded trial of the same key).
    override : int, optional
        ``--trials``: N is this number (V still from the ledger where it has two trials or more).
    periods_per_year : int

    Returns
    -------
    TrialCount
    """
    merged = {t.key: t for t in trials}
    for trial in current:
        merged[trial.key] = trial
    counted = list(merged.values())
    costs = sorted({c for t in counted for c in t.sharpe})
    variance = {}
    for cost in costs:
        values = np.array([t.sharpe[cost] for t in counted if cost in t.sharpe and math.isfinite(t.sharpe[cost])])
        variance[cost] = float(values.var(ddof=1)) / periods_per_year if values.size >= 2 else math.nan
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, int) or override < 1:
            raise ValueError(f"override must be an integer >= 1, got {override!r}")
        return TrialCount(override, variance, "override", counted)
    if not counted:
        return TrialCount(1, {}, "none", [])
    return TrialCount(len(counted), variance, "ledger", counted)
