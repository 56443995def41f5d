"""Where a walk-forward's results land: ``<home>/walk_forward/<name>/``, written all at once.

The folder is built beside its final place and swapped in, so an interrupted run leaves the
previous results (or nothing) — never half a folder — and a rerun with the same inputs writes the
same files.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pandas as pd

from pairs_assets.errors import PairsError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class WalkForwardOutputError(PairsError, ValueError):
    """A walk-forward name or output folder cannot be used."""


def output_dir(home: str | Path, name: str) -> Path:
    if not NAME_PATTERN.match(name or ""):
        raise WalkForwardOutputError(
            f"walk-forward name {name!r}: use letters, digits, '_', '-' or '.' (at most 64, not starting with '.')"
        )
    return Path(home) / "walk_forward" / name


def write_outputs(result, target: Path, figure=None) -> dict[str, Path]:
    """Write summary.csv, trades.csv, daily_pnl.csv.gz, configs.csv, score_study.csv, score_evidence.csv
    and equity.png into ``target``, atomically.

    ``result``: a :class:`pairs_assets.quant.walkforward.engine.WalkForwardResult`.
    Returns the written files by short name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    files = {
        "summary": staging / "summary.csv",
        "trades": staging / "trades.csv",
        "daily_pnl": staging / "daily_pnl.csv.gz",
        "configs": staging / "configs.csv",
    }
    try:
        result.summary.to_csv(files["summary"], index=False, float_format="%.6g")
        trades = result.trades.copy()
        for column in ("entry_session", "exit_session", "entry_exec", "exit_exec"):
            if column in trades:
                stamps = pd.to_datetime(trades[column])
                # sessions as dates; intraday bar times (naive UTC, never midnight) in full
                trades[column] = stamps.dt.strftime("%Y-%m-%d").where(
                    stamps.isna() | (stamps == stamps.dt.normalize()), stamps.dt.strftime("%Y-%m-%dT%H:%M:%SZ")
                )
        trades.to_csv(files["trades"], index=False, float_format="%.8g")
        daily = result.daily.assign(session=pd.to_datetime(result.daily["session"]).dt.strftime("%Y-%m-%d"))
        # mtime=0 keeps the gzip byte-identical across reruns
        daily.to_csv(files["daily_pnl"], index=False, float_format="%.8g", compression={"method": "gzip", "mtime": 0})
        pd.DataFrame(
            {
                "sector": list(result.configs),
                "configs": list(result.configs.values()),
                "pair_days": [result.config_pairs[s] for s in result.configs],
            }
        ).to_csv(files["configs"], index=False)
        if result.score_study is not None:
            files["score_study"] = staging / "score_study.csv"
            study = result.score_study.assign(
                formation_session=pd.to_datetime(result.score_study["formation_session"]).dt.strftime("%Y-%m-%d")
            )
            study.to_csv(files["score_study"], index=False, float_format="%.8g")
            files["score_evidence"] = staging / "score_evidence.csv"
            result.score_evidence.to_csv(files["score_evidence"], index=False, float_format="%.6g")
        if figure is not None:
            files["equity"] = staging / "equity.png"
            figure.savefig(files["equity"], dpi=110, metadata={"Software": None})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
    return {k: target / v.name for k, v in files.items()}
