"""Robustness of the walk-forward: the one-step neighbourhood of each tuned setting and the formation phases.

A strategy chosen on the development years is believable when its neighbours — the same design one
step away in each setting that was tuned — tell the same story, and when the arbitrary phase of the
formation calendar does not decide the answer. ``pairs walk-forward --robustness`` runs every
:func:`variants` entry as an ordinary walk-forward (each recorded in MLflow, so each is a trial the
ledger counts and the deflated Sharpe's N grows with it), then :func:`robustness_table` collects the
total's Sharpe on the development and held-out periods, with the block-bootstrap intervals the
walk-forward already computes.

The tuned settings and their one-step neighbours (the steps of the configurations tried on
1995–2010, README *Configurations tried*): ``correlation_min`` ± 0.1, ``formation_window`` ± 63
sessions (a quarter), ``reselect_every`` halved and doubled (10, 42 around 21), ``entry_z`` ± 0.5 and
``exit_z`` ± 0.25 (the 1.5 / 0.25 levels once tried); and ``formation_phase`` over the phases of the
re-selection interval (every ``phase_step``-th: 0, 3, …, 18 of 21 by default — seven phases).

Pure: the runs are the caller's; this module only names them and tabulates their summaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["NEIGHBOUR_STEPS", "ROBUSTNESS_COLUMNS", "Variant", "robustness_table", "variants"]

#: setting → how its neighbours are made from the value: ("add", step) for value ± step,
#: ("scale", factor) for round(value / factor) and round(value × factor).
NEIGHBOUR_STEPS: dict[str, tuple[str, float]] = {
    "correlation_min": ("add", 0.1),
    "formation_window": ("add", 63),
    "reselect_every": ("scale", 2.0),
    "entry_z": ("add", 0.5),
    "exit_z": ("add", 0.25),
}

ROBUSTNESS_COLUMNS = [
    "variant",
    "setting",
    "value",
    "is_default",
    "period",
    "period_label",
    "cost_bp",
    "sharpe",
    "sharpe_low",
    "sharpe_high",
    "excludes_zero",
    "trades",
    "few_trades",
    "vs_baseline",
    "vs_baseline_low",
    "vs_baseline_high",
    "ann_return",
    "psr",
    "deflated_sharpe",
    "n_trials",
]


@dataclass(frozen=True)
class Variant:
    """One run of the robustness study.

    Attributes
    ----------
    label : str
        ``default`` or ``<setting>=<value>`` (also the run's name suffix, so letters, digits, ``_.=-``).
    setting : str
        The setting moved (``default`` for the centre).
    value : object
        Its value in this run.
    overrides : dict
        Strategy settings that differ from the centre.
    """

    label: str
    setting: str
    value: object
    overrides: dict = field(default_factory=dict)


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def variants(strategy: Mapping[str, object], phase_step: int = 3) -> list[Variant]:
    """The centre, the one-step neighbours of :data:`NEIGHBOUR_STEPS` and the formation phases.

    Parameters
    ----------
    strategy : mapping
        The centre's strategy settings (``StrategySettings.model_dump()``).
    phase_step : int
        Every ``phase_step``-th phase of ``reselect_every`` besides the centre's own (0 = none).

    Returns
    -------
    list of Variant
        The centre first; neighbours that are invalid (``exit_z`` ≥ ``entry_z``, a correlation above 1,
        a window below 20, …) are left out, never clipped onto another value.
    """
    if phase_step < 0:
        raise ValueError(f"phase_step must be >= 0, got {phase_step}")
    out = [Variant("default", "default", "", {})]
    for setting, (how, step) in NEIGHBOUR_STEPS.items():
        centre = strategy[setting]
        if how == "add":
            values = [round(centre - step, 10), round(centre + step, 10)]
            if isinstance(centre, int) and not isinstance(centre, bool):
                values = [int(v) for v in values]
        else:
            values = [max(1, round(centre / step)), round(centre * step)]
        for value in values:
            config = {**strategy, setting: value}
            if setting == "reselect_every":
                config["formation_phase"] = 0
            if not _valid(config):
                continue
            out.append(
                Variant(
                    f"{setting}={_fmt(value)}",
                    setting,
                    value,
                    {k: v for k, v in config.items() if strategy.get(k) != v},
                )
            )
    every, own = int(strategy["reselect_every"]), int(strategy.get("formation_phase", 0))
    if phase_step and every > 1:
        for phase in range(0, every, phase_step):
            if phase != own:
                out.append(Variant(f"formation_phase={phase}", "formation_phase", phase, {"formation_phase": phase}))
    return out


def _valid(config: Mapping[str, object]) -> bool:
    return (
        -1.0 <= float(config["correlation_min"]) <= 1.0
        and int(config["formation_window"]) >= 20
        and int(config["reselect_every"]) >= 1
        and 0.0 <= float(config["exit_z"]) < float(config["entry_z"]) < float(config["stop_z"])
        and float(config["entry_z"]) > 0.0
    )


def robustness_table(
    summaries: Sequence[tuple[Variant, pd.DataFrame]],
    periods: Mapping[str, str],
    strategy: str = "default",
) -> pd.DataFrame:
    """The total's Sharpe of every variant on each named period, with its interval.

    Parameters
    ----------
    summaries : sequence of (Variant, summary frame)
        Each run's ``summary.csv`` (rows strategy × sector × cost_bp × period).
    periods : mapping
        Name in the table (``dev``, ``held_out``) → the summary's period label (``1995-2010``, …).
    strategy : str
        The summary's strategy whose rows are taken.

    Returns
    -------
    pandas.DataFrame
        :data:`ROBUSTNESS_COLUMNS`, one row per variant × period × cost; ``excludes_zero`` is True
        when the 95% interval lies wholly above or below 0.
    """
    rows = []
    for variant, summary in summaries:
        total = summary[(summary["strategy"] == strategy) & (summary["sector"] == "all")]
        for name, label in periods.items():
            part = total[total["period"] == label]
            if part.empty:
                raise ValueError(f"robustness: run {variant.label} has no period {label!r} in its summary")
            for r in part.itertuples():
                low, high = float(r.sharpe_low), float(r.sharpe_high)
                rows.append(
                    {
                        "variant": variant.label,
                        "setting": variant.setting,
                        "value": _fmt(variant.value),
                        "is_default": variant.setting == "default",
                        "period": name,
                        "period_label": label,
                        "cost_bp": float(r.cost_bp),
                        "sharpe": float(r.sharpe),
                        "sharpe_low": low,
                        "sharpe_high": high,
                        "excludes_zero": bool(np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0)),
                        "trades": int(r.trades),
                        "few_trades": bool(getattr(r, "few_trades", False)),
                        "vs_baseline": float(r.vs_baseline),
                        "vs_baseline_low": float(r.vs_baseline_low),
                        "vs_baseline_high": float(r.vs_baseline_high),
                        "ann_return": float(r.ann_return),
                        "psr": float(r.psr),
                        "deflated_sharpe": float(r.deflated_sharpe),
                        "n_trials": float(getattr(r, "n_trials", np.nan)),
                    }
                )
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)
