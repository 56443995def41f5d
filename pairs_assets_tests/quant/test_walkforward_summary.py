"""The walk-forward's summary: intervals on every Sharpe, the difference to the baseline on the same
days, the DSR only where selection happened with N and V from the ledger, the trade-count flag."""

import math

import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.quant.walkforward.engine import SUMMARY_COLUMNS, WalkForwardSettings, run_walk_forward
from pairs_assets.quant.walkforward.ledger import Trial
from pairs_assets.quant.walkforward.metrics import deflated_sharpe_ratio
from pairs_assets.quant.walkforward.replay import SectorPanel
from pairs_assets.settings import StrategySettings
from pairs_assets_tests.planted import planted_closes


def test_summary_intervals_difference_and_deflation_from_the_ledger():
    closes = planted_closes(n_sessions=1160, phi=0.3)[["AAPL", "AMD", "MSFT"]]
    panel = SectorPanel(sector="technology", closes=closes, source="planted")
    periods = [("nov", "2022-11-01", "2022-11-30"), ("dec", "2022-12-01", "2022-12-31")]
    settings = WalkForwardSettings(
        start="2022-11-01",
        end="2022-12-28",
        costs=[0, 5],
        periods=periods,
        selection=("2022-11-01", "2022-11-30"),
        bootstrap_resamples=200,
        min_trades=3,
    )
    ledger = [Trial("other1", {0.0: 1.5, 5.0: 1.0}), Trial("other2", {0.0: -0.5, 5.0: -1.0})]
    result = run_walk_forward(
        {"technology": panel},
        {"technology": ["AAPL", "AMD", "MSFT"]},
        partitions.next_session,
        StrategySettings.preset("seed"),
        settings,
        ledger=ledger,
    )
    summary = result.summary
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert (result.trials.n_trials, result.trials.source) == (3, "ledger")  # the two recorded and this run
    ours = summary[summary["strategy"] == "default"].set_index(["sector", "cost_bp", "period"])
    base = summary[summary["strategy"] == "baseline"].set_index(["sector", "cost_bp", "period"])
    assert ours.loc[("all", 5.0, "full"), "trades"] >= 3  # the planted pair trades
    # DSR where the period overlaps the selection range, for our strategy only; PSR everywhere
    assert ours.xs("dec", level="period")["deflated_sharpe"].isna().all()
    assert base["deflated_sharpe"].isna().all() and base["n_trials"].isna().all()
    row = ours.loc[("all", 5.0, "full")]
    assert row["n_trials"] == 3 and row["trials_source"] == "ledger"
    assert row["trial_sharpe_sd"] == pytest.approx(math.sqrt(result.trials.variance[5.0] * 252))
    daily = result.daily[
        (result.daily["strategy"] == "default") & (result.daily["sector"] == "all") & (result.daily["cost_bp"] == 5.0)
    ]
    pnl = daily["pnl"].to_numpy()
    from scipy.stats import kurtosis, skew

    expected = deflated_sharpe_ratio(
        pnl.mean() / pnl.std(ddof=1), len(pnl), skew(pnl), kurtosis(pnl, fisher=False), 3, result.trials.variance[5.0]
    )
    assert row["deflated_sharpe"] == pytest.approx(expected, rel=1e-9)
    assert 0.0 <= row["psr"] <= 1.0
    # intervals around every defined Sharpe; the difference is ours minus the baseline's on the same days
    defined = summary.dropna(subset=["sharpe"])
    assert (defined["sharpe_low"] < defined["sharpe_high"]).all()
    for key, mine in ours.iterrows():
        if not math.isnan(mine["sharpe"]) and not math.isnan(base.loc[key, "sharpe"]):
            assert mine["vs_baseline"] == pytest.approx(mine["sharpe"] - base.loc[key, "sharpe"], rel=1e-9, abs=1e-12)
            assert mine["vs_baseline_low"] <= mine["vs_baseline_high"]
    assert base["vs_baseline"].isna().all()
    assert (summary["few_trades"] == (summary["trades"] < 3)).all()
    # seeded: the same run gives the same intervals
    again = run_walk_forward(
        {"technology": panel},
        {"technology": ["AAPL", "AMD", "MSFT"]},
        partitions.next_session,
        StrategySettings.preset("seed"),
        settings,
        ledger=ledger,
    )
    pd.testing.assert_frame_equal(again.summary, summary)


def test_the_table_prints_intervals_and_dashes_below_the_minimum_trades():
    from pairs_assets.cli import print_walk_forward_summary

    nan = float("nan")
    base = dict(
        sector="all",
        cost_bp=5.0,
        ann_return=0.001,
        ann_vol=0.01,
        max_drawdown=0.01,
        avg_holding=3.0,
        hit_rate=0.5,
        turnover=1.0,
        exposure=0.1,
        trial_sharpe_sd=0.4,
    )
    rows = [
        dict(
            strategy="default",
            period="1995-2010",
            sharpe=0.67,
            sharpe_low=-0.1,
            sharpe_high=1.4,
            trades=12,
            t_stat=2.87,
            psr=0.9,
            deflated_sharpe=0.55,
            vs_baseline=0.86,
            vs_baseline_low=0.01,
            vs_baseline_high=1.7,
            n_trials=11.0,
            trials_source="ledger",
            few_trades=False,
        ),
        dict(
            strategy="default",
            period="1995-2002",
            sharpe=0.20,
            sharpe_low=0.0,
            sharpe_high=0.3,
            trades=1,
            t_stat=nan,
            psr=0.6,
            deflated_sharpe=0.18,
            vs_baseline=0.7,
            vs_baseline_low=0.1,
            vs_baseline_high=0.9,
            n_trials=11.0,
            trials_source="ledger",
            few_trades=True,
        ),
        dict(
            strategy="baseline",
            period="2011-2022",
            sharpe=-0.22,
            sharpe_low=-0.89,
            sharpe_high=0.40,
            trades=107,
            t_stat=-0.79,
            psr=0.2,
            deflated_sharpe=nan,
            vs_baseline=nan,
            vs_baseline_low=nan,
            vs_baseline_high=nan,
            n_trials=nan,
            trials_source="",
            few_trades=False,
        ),
    ]
    lines = []
    print_walk_forward_summary(pd.DataFrame([{**base, **r} for r in rows]), echo=lines.append, min_trades=10)
    text = "\n".join(lines)
    assert "+0.67 [-0.10, +1.40]" in text and "+0.86 [+0.01, +1.70]" in text and "-0.22 [-0.89, +0.40]" in text
    few = next(line for line in lines if "1995-2002" in line)
    assert "– (n=1)" in few and "+0.20" not in few and "0.180" not in few and "+0.70" not in few
    assert "N = 11 (counted by the trials ledger); 5 bp: sd of the trials' Sharpes 0.40" in text


def test_robustness_variants_are_the_one_step_neighbours_and_the_phases():
    from pairs_assets.quant.walkforward.robustness import robustness_table, variants
    from pairs_assets.settings import StrategySettings

    plan = variants(StrategySettings().model_dump(mode="json"), phase_step=3)
    labels = [v.label for v in plan]
    assert labels == [
        "default",
        "correlation_min=0.6",
        "correlation_min=0.8",
        "formation_window=189",
        "formation_window=315",
        "reselect_every=10",
        "reselect_every=42",
        "entry_z=1.5",
        "entry_z=2.5",
        "exit_z=0.25",
        "exit_z=0.75",
        *[f"formation_phase={p}" for p in (3, 6, 9, 12, 15, 18)],
    ]
    assert plan[1].overrides == {"correlation_min": 0.6} and plan[-1].overrides == {"formation_phase": 18}
    # a neighbour that breaks a constraint is left out, not clipped onto another value
    tight = variants({**StrategySettings().model_dump(mode="json"), "exit_z": 1.8}, phase_step=0)
    assert "entry_z=1.5" not in [v.label for v in tight] and "exit_z=2.05" not in [v.label for v in tight]
    import pandas as pd

    summary = pd.DataFrame(
        [
            {
                "strategy": "default",
                "sector": "all",
                "cost_bp": 5.0,
                "period": label,
                "sharpe": s,
                "sharpe_low": lo,
                "sharpe_high": hi,
                "trades": 12,
                "few_trades": False,
                "vs_baseline": 0.1,
                "vs_baseline_low": -0.1,
                "vs_baseline_high": 0.3,
                "ann_return": 0.01,
                "psr": 0.9,
                "deflated_sharpe": float("nan"),
                "n_trials": 3,
            }
            for label, s, lo, hi in (("1995-2010", 0.6, 0.1, 1.1), ("2011-2022", 0.1, -0.5, 0.6))
        ]
    )
    table = robustness_table([(plan[0], summary)], {"dev": "1995-2010", "held_out": "2011-2022"})
    assert table["excludes_zero"].tolist() == [True, False]
    with pytest.raises(ValueError, match="no period '2023-2024'"):
        robustness_table([(plan[0], summary)], {"later": "2023-2024"})
