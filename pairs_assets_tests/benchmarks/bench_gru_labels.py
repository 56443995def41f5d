"""GRU test metrics beside its baselines for the two labels, on sampled real pair-days (issue 8 item 5).

For each pair-day (as-of D): β and α by OLS of log y on log x over the formation window ending at D
(as cointegrated_pairs does), the spread over gru_window sessions ending at D, then the gru_models
stage's own GARCH features and :func:`fit_pair_model` with ``label="reversion"`` (the original
design's target) and ``label="entry_event"`` (the entry rule's event). Prints a table: test AUC / F1
of the GRU and of the baselines, the GRU's AUC on the test sessions with |z| >= entry, beats_baselines.

    .venv/bin/python pairs_assets_tests/benchmarks/bench_gru_labels.py [--epochs 50] [--hidden 64]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from pairs_assets.quant.features import GRUTrainingError
from pairs_assets.quant.gru import fit_pair_model
from pairs_assets.quant.stages import garch_features, gru_config, pair_spread
from pairs_assets.settings import EMBEDDED_BARS_FILE, StrategySettings

PAIR_DAYS = [
    ("KO-PG", "2022-12-14"),
    ("KO-PEP", "2008-06-30"),
    ("XOM-CVX", "2005-03-31"),
    ("JPM-BAC", "2002-09-30"),
    ("PFE-MRK", "2010-06-30"),
    ("HD-WMT", "2006-12-29"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    strategy = StrategySettings(gru_max_epochs=args.epochs, gru_hidden=args.hidden)
    config = gru_config(strategy)
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col=0, parse_dates=True)
    rows = []
    for pair_id, day in PAIR_DAYS:
        y, x = pair_id.split("-")
        end = closes.index.get_loc(pd.Timestamp(day))
        formation = np.log(closes[[y, x]].iloc[end - strategy.formation_window + 1 : end + 1])
        beta, alpha = np.polyfit(formation[x], formation[y], 1)
        window = closes[[y, x]].iloc[end - strategy.gru_window + 1 : end + 1]
        levels = pair_spread(window, y, x, beta, alpha)
        garch, _ = garch_features(levels, config, strategy.gru_horizon)
        for label in ("reversion", "entry_event"):
            started = time.perf_counter()
            try:
                r = fit_pair_model(
                    levels,
                    garch["garch_sigma"],
                    garch["garch_std_resid"],
                    strategy.entry_z,
                    config,
                    horizon=strategy.gru_horizon,
                    pair_id=pair_id,
                    label=label,
                    formation_window=strategy.formation_window,
                    exit_z=strategy.exit_z,
                    stop_z=strategy.stop_z,
                )
            except GRUTrainingError as exc:
                rows.append({"pair": pair_id, "as_of": day, "label": label, "note": str(exc)[:60]})
                continue
            b = r.baseline_metrics
            rows.append(
                {
                    "pair": pair_id,
                    "as_of": day,
                    "label": label,
                    "pos_rate_test": round(r.positive_rate["test"], 3),
                    "gru_auc": round(r.metrics["test"]["roc_auc"], 3),
                    "gru_f1": round(r.metrics["test"]["f1"], 3),
                    "logit_auc": round(b["logistic"]["roc_auc"], 3),
                    "logit_f1": round(b["logistic"]["f1"], 3),
                    "zrule_f1": round(b["z_rule"]["f1"], 3),
                    "major_f1": round(b["majority"]["f1"], 3),
                    "gru_auc_at_entry": round(r.entry_metrics.get("roc_auc", float("nan")), 3),
                    "n_at_entry": int(r.entry_metrics.get("n", 0)),
                    "beats": r.beats_baselines,
                    "s": round(time.perf_counter() - started, 1),
                }
            )
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False))
        num = table.select_dtypes("number").drop(columns=["s"], errors="ignore")
        print(num.groupby(table["label"]).mean().round(3).to_string())


if __name__ == "__main__":
    main()
