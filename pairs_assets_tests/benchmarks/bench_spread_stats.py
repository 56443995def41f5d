"""After selection, how far is the spread from the config's mean? (issue 8 item 1: spread statistics)

The config's spread mean and σ are those of the formation window's spread, i.e. of the residuals
of the regression that estimated β on that same window (mean ≈ 0 by construction, σ in sample).
Issue 8 measured, for the seed's 60-session formation, an average |z| of 3.5 twenty sessions after
selection and 55% of selected pairs reaching the 3.5 stop. This reads the ``score_study.csv`` of
walk-forward runs (every scored pair with its formation session, β, α and selection) and the
embedded closes, and prints for each run: mean |z| at +1, +5, +20 sessions after the formation
with the config's mean and σ, and the share of selected pairs whose |z| reaches stop_z within 20
sessions. Asserts nothing.

    .venv/bin/python pairs_assets_tests/benchmarks/bench_spread_stats.py RUN_DIR[=formation_window] ...

e.g. ``<PAIRS_HOME>/walk_forward/seed_split=60 <PAIRS_HOME>/walk_forward/default_split=252``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pairs_assets.settings import EMBEDDED_BARS_FILE


def drift(study: pd.DataFrame, closes: pd.DataFrame, formation_window: int, stop_z: float = 3.5) -> dict:
    logs = np.log(closes)
    index = closes.index
    rows = []
    for row in study[study["selected"]].itertuples():
        end = index.get_loc(pd.Timestamp(row.formation_session))
        if end + 20 >= len(index):
            continue
        s = (logs[row.y] - row.hedge_ratio * logs[row.x] - row.intercept).to_numpy()
        window = s[end - formation_window + 1 : end + 1]
        z = (s[end : end + 21] - window.mean()) / window.std(ddof=1)
        rows.append(
            {"z1": abs(z[1]), "z5": abs(z[5]), "z20": abs(z[20]), "stop": bool((np.abs(z[1:]) >= stop_z).any())}
        )
    frame = pd.DataFrame(rows)
    return {
        "pairs": len(frame),
        "|z| +1": frame["z1"].mean(),
        "|z| +5": frame["z5"].mean(),
        "|z| +20": frame["z20"].mean(),
        "stop within 20": frame["stop"].mean(),
    }


def main() -> None:
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True)
    table = []
    for arg in sys.argv[1:]:
        folder, _, window = arg.partition("=")
        study = pd.read_csv(Path(folder) / "score_study.csv")
        table.append(
            {"run": Path(folder).name, "formation": int(window or 60), **drift(study, closes, int(window or 60))}
        )
    print(pd.DataFrame(table).to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
