"""Every quality gate of the daily graph, in one place.

Gates are asset checks evaluated as the asset materializes, on exactly what was written. Two shapes,
both Dagster's public API: ``raw_bars`` returns ``MaterializeResult(check_results=…)``;
``cointegrated_pairs``, ``garch_models`` and ``model_selection`` yield their ``Output`` and then each
``AssetCheckResult``. A range run (one run for many partitions, ``pairs_assets.assets.ranges``)
records each partition's results as ``AssetCheckEvaluation``s against that partition. ERROR gates are *blocking*: when one fails, the stages
downstream of that asset do not run in the same run, and the check's metadata says why. WARN gates
record a warning and let the run continue.

Every check is partition-scoped (``AssetCheckSpec(partitions_def=…)``): its evaluation records the
partition ``date|sector`` it judged. A one-partition run evaluates its partition; a range run of
raw_bars evaluates each partition of the range on that partition's bars alone.

| asset | check | severity |
|---|---|---|
| raw_bars | bars_unique, prices_positive_finite, sector_symbols_present, ohlc_consistent | ERROR (blocking) |
| raw_bars | price_jumps_plausible (robust median/MAD of log returns, price_max), sector_has_two_usable_symbols | WARN |
| cointegrated_pairs | correlation_above_min, eg_pvalue_below_max (re-tested with statsmodels ``coint``) | ERROR (blocking) |
| garch_models | residual_diagnostics (Ljung-Box, ARCH-LM), garch_converged | WARN |
| model_selection | composite_above_min | ERROR (blocking) |
| paper_book | exposure_within_limits (every leg ≤ max_position, the book's ex-ante daily volatility ≤ max_portfolio_risk) | ERROR (blocking; the signal job opens no position while its latest evaluation failed) |
| paper_book | drawdown_within_limit, positions_match_walk_forward | WARN |

The paper book's checks are scoped to sessions (its partitions), not to ``date|sector``.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import numpy as np
import pandas as pd

from pairs_assets.quant.pipeline import garch_gru as _stages
from pairs_assets.settings import StrategySettings

ERROR = dg.AssetCheckSeverity.ERROR
WARN = dg.AssetCheckSeverity.WARN


def _spec(asset: str, name: str, description: str, blocking: bool) -> dg.AssetCheckSpec:
    # unscoped here; each asset factory scopes its checks to its partitions (check_specs)
    return dg.AssetCheckSpec(name=name, asset=asset, description=description, blocking=blocking)


def check_specs(specs: Sequence[dg.AssetCheckSpec], daily: dg.MultiPartitionsDefinition) -> list[dg.AssetCheckSpec]:
    """``specs`` scoped to ``daily``'s partitions.

    Partition-scoped: an evaluation records its partition (``date|sector``), so a failure in one
    partition marks that partition's check, not the asset's check for every partition.
    """
    with warnings.catch_warnings():  # a "preview" API in Dagster 1.13, chosen on purpose
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                name=spec.name,
                asset=spec.asset_key,
                description=spec.description,
                blocking=spec.blocking,
                partitions_def=daily,
            )
            for spec in specs
        ]


RAW_BARS_CHECKS = [
    _spec("raw_bars", "bars_unique", "No two bars of a symbol share a timestamp (per source).", True),
    _spec("raw_bars", "prices_positive_finite", "Every stored price is positive and finite.", True),
    _spec("raw_bars", "sector_symbols_present", "Every sector symbol has bars in every session.", True),
    _spec(
        "raw_bars",
        "ohlc_consistent",
        "Where open/high/low are known: low ≤ open, close ≤ high (and low ≤ high). An impossible bar blocks.",
        True,
    ),
    _spec(
        "raw_bars",
        "price_jumps_plausible",
        "No close jumps beyond jump_z_max robust σ (trailing median/MAD of log returns; with too little history, "
        "beyond jump_short_history_ratio_max×) or lies outside [price_min, price_max] (WARN).",
        False,
    ),
    _spec(
        "raw_bars",
        "sector_has_two_usable_symbols",
        "The sector has at least two symbols with usable bars in every session: one symbol never yields a pair (WARN).",
        False,
    ),
]
# the daily stages' checks are declared with their stages (pairs_assets.quant.pipeline.garch_gru)
COINTEGRATED_PAIRS_CHECKS = [
    _spec("cointegrated_pairs", c.name, c.description, c.blocking) for c in _stages.COINTEGRATED_PAIRS_CHECKS
]
GARCH_CHECKS = [_spec("garch_models", c.name, c.description, c.blocking) for c in _stages.GARCH_CHECKS]
MODEL_SELECTION_CHECKS = [
    _spec("model_selection", c.name, c.description, c.blocking) for c in _stages.MODEL_SELECTION_CHECKS
]


def _result(name: str, asset: str, passed: bool, severity: dg.AssetCheckSeverity, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name, asset_key=asset, passed=bool(passed), severity=severity, metadata=metadata
    )


def _first(items: Sequence[str], n: int = 10) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


# --- raw_bars ------------------------------------------------------------------------------
@dataclass(frozen=True)
class RawBarsFindings:
    """Every raw_bars gate's findings over a sector's sessions, each finding tied to its session.

    One pass over a (possibly 1,300-session) range; :meth:`results` then gives the check results
    of any subset of the sessions — all of them for a one-partition run, one session at a time
    for a range run, so each partition's checks say only what is wrong in that partition.
    """

    symbols: tuple[str, ...]
    sessions: tuple[pd.Timestamp, ...]
    findings: dict[str, tuple[tuple[pd.Timestamp, str], ...]]  # check name → (session, item), in report order
    usable: dict[pd.Timestamp, frozenset[str]]  # session → symbols with a usable bar in it
    bars_with_ohlc: dict[pd.Timestamp, int]
    history_bars: int
    strategy: StrategySettings

    def results(self, sessions: Sequence[pd.Timestamp] | None = None) -> list[dg.AssetCheckResult]:
        """The six raw_bars check results over ``sessions`` (default: all of them)."""
        chosen = self.sessions if sessions is None else tuple(pd.Timestamp(x) for x in sessions)
        wanted = set(chosen)

        def items(name: str) -> list[str]:
            return [text for session, text in self.findings[name] if session in wanted]

        dup, bad, missing = items("bars_unique"), items("prices_positive_finite"), items("sector_symbols_present")
        ohlc, jumps = items("ohlc_consistent"), items("price_jumps_plausible")
        usable = sorted(
            s for s in self.symbols if all(s in self.usable.get(session, frozenset()) for session in chosen)
        )
        sector_note = f"{len(usable)} usable symbol(s) ({', '.join(usable) or 'none'}) of {len(self.symbols)}: " + (
            "no pair can be formed in this sector" if len(usable) < 2 else "pairs can be formed"
        )
        st = self.strategy
        return [
            _result("bars_unique", "raw_bars", not dup, ERROR, duplicates=len(dup), examples=_first(dup) or "none"),
            _result(
                "prices_positive_finite",
                "raw_bars",
                not bad,
                ERROR,
                bad_prices=len(bad),
                examples=_first(bad) or "none",
            ),
            _result(
                "sector_symbols_present",
                "raw_bars",
                not missing,
                ERROR,
                missing=len(missing),
                examples=_first(missing) or "none",
                symbols=", ".join(self.symbols),
            ),
            _result(
                "ohlc_consistent",
                "raw_bars",
                not ohlc,
                ERROR,
                violations=len(ohlc),
                bars_with_ohlc=sum(self.bars_with_ohlc.get(x, 0) for x in chosen),
                examples=_first(ohlc) or "none",
            ),
            _result(
                "price_jumps_plausible",
                "raw_bars",
                not jumps,
                WARN,
                flagged=len(jumps),
                examples=_first(jumps) or "none",
                jump_z_max=st.jump_z_max,
                jump_min_abs_log_return=st.jump_min_abs_log_return,
                jump_window=st.jump_window,
                price_max=st.price_max,
                price_min=st.price_min,
                jump_short_history_ratio_max=st.jump_short_history_ratio_max,
                history_bars=self.history_bars,
            ),
            _result(
                "sector_has_two_usable_symbols",
                "raw_bars",
                len(usable) >= 2,
                WARN,
                usable_symbols=len(usable),
                symbols=", ".join(self.symbols),
                note=sector_note,
            ),
        ]


def raw_bars_findings(
    stored: pd.DataFrame,
    history: pd.DataFrame,
    symbols: Sequence[str],
    sessions: Sequence[pd.Timestamp],
    strategy: StrategySettings,
) -> RawBarsFindings:
    """The gates on a sector's stored bars (with a ``session`` column) over ``sessions``.

    ERROR: no duplicate (symbol, timestamp, source); every price positive and finite; every symbol
    has a bar in every session; known open/high/low/close consistent. WARN: no close jumps beyond
    ``jump_z_max`` robust σ (trailing median/MAD of log returns, see ``quant.outliers``) or above
    ``price_max``; at least two usable symbols (a bar in the session, none impossible).

    ``history``: the same symbols' stored bars from ``jump_window`` sessions before the first
    session through the last (the trailing robust scale of a jump needs earlier bars). Jumps are
    reported only for bars of ``sessions``; each is named ``SYMBOL@session`` with its timestamp.
    """
    from pairs_assets.partitions import EXCHANGE_TZ
    from pairs_assets.quant.outliers import ohlc_violations, price_jumps

    def session_of(timestamp: pd.Timestamp) -> pd.Timestamp:
        return pd.Timestamp(timestamp.tz_convert(EXCHANGE_TZ).date() if timestamp.tzinfo else timestamp.date())

    def bar_name(symbol: str, timestamp: pd.Timestamp) -> str:
        return f"{symbol}@{session_of(timestamp).date()} ({timestamp.isoformat()})"

    sessions = tuple(sorted({pd.Timestamp(x) for x in sessions}))
    dup = stored.duplicated(["symbol", "timestamp", "source"], keep=False)
    dup_items = sorted(
        {(r.session, f"{r.symbol}@{r.timestamp.isoformat()}") for r in stored[dup].itertuples()}, key=lambda x: x[1]
    )
    prices = stored[["open", "high", "low", "close", "vwap"]].to_numpy(dtype="float64")
    close = stored["close"].to_numpy(dtype="float64")
    bad = (~np.isnan(prices) & (~np.isfinite(prices) | (prices <= 0))).any(axis=1) | ~np.isfinite(close)
    bad_items = sorted(
        {(r.session, f"{r.symbol}@{r.timestamp.isoformat()} close={r.close}") for r in stored[bad].itertuples()},
        key=lambda x: x[1],
    )
    present = set(zip(stored["symbol"], stored["session"]))
    missing = sorted(
        ((s, f"{symbol}@{s.date()}") for symbol in symbols for s in sessions if (symbol, s) not in present),
        key=lambda x: x[1],
    )

    ohlc = ohlc_violations(stored)
    ohlc_items = [
        (
            session_of(r.timestamp),
            f"{bar_name(r.symbol, r.timestamp)}: {r.problem} (o={r.open:g} h={r.high:g} l={r.low:g} c={r.close:g})",
        )
        for r in ohlc.itertuples()
    ]
    known = stored[["open", "high", "low"]].notna().any(axis=1)
    bars_with_ohlc = stored.loc[known, "session"].value_counts().to_dict()

    jumps = price_jumps(
        history,
        window=strategy.jump_window,
        z_max=strategy.jump_z_max,
        min_abs_log_return=strategy.jump_min_abs_log_return,
        min_history=strategy.jump_min_history,
        price_max=strategy.price_max,
        check_from=stored["timestamp"].min() if not stored.empty else None,
        short_history_ratio_max=strategy.jump_short_history_ratio_max,
        price_min=strategy.price_min,
    )
    notes = {
        "above price_max": lambda r: f"(above price_max {strategy.price_max:g})",
        "below price_min": lambda r: f"(below price_min {strategy.price_min:g})",
        "jump": lambda r: f"(log return {r.log_return:+.3f}, robust z {r.robust_z:+.1f})",
        "jump (short history)": lambda r: (
            f"(log return {r.log_return:+.3f}: beyond {strategy.jump_short_history_ratio_max:g}x with fewer than "
            f"{strategy.jump_min_history} earlier returns)"
        ),
    }
    jump_items = [
        (
            session_of(r.timestamp),
            f"{bar_name(r.symbol, r.timestamp)}: close {r.close:.6g} after {r.previous_close:.6g} "
            + notes[r.reason](r),
        )
        for r in jumps.itertuples()
    ]

    # usable in a session: a finite positive close there, no impossible bar (a real jump stays
    # usable; a close outside [price_min, price_max] does not)
    impossible = {(r.symbol, session_of(r.timestamp)) for r in ohlc.itertuples()} | {
        (r.symbol, session_of(r.timestamp)) for r in jumps.itertuples() if r.reason.startswith(("above", "below"))
    }
    finite = stored[np.isfinite(close) & (close > 0)]
    usable: dict[pd.Timestamp, set[str]] = {}
    for symbol, session in zip(finite["symbol"], finite["session"]):
        if (symbol, session) not in impossible:
            usable.setdefault(pd.Timestamp(session), set()).add(symbol)
    return RawBarsFindings(
        symbols=tuple(symbols),
        sessions=sessions,
        findings={
            "bars_unique": tuple(dup_items),
            "prices_positive_finite": tuple(bad_items),
            "sector_symbols_present": tuple(missing),
            "ohlc_consistent": tuple(ohlc_items),
            "price_jumps_plausible": tuple(jump_items),
        },
        usable={k: frozenset(v) for k, v in usable.items()},
        bars_with_ohlc={pd.Timestamp(k): int(v) for k, v in bars_with_ohlc.items()},
        history_bars=len(history),
        strategy=strategy,
    )


# --- cointegrated_pairs --------------------------------------------------------------------
# The p-value gate re-tests pairs with statsmodels ``coint``, an implementation independent of the
# screen's. Up to EG_RETEST_MAX pairs (any sector of the embedded universe) every pair is
# re-tested; beyond that (hundreds of symbols with every pair a candidate: thousands of passing
# pairs at ~5 ms each, more than the whole screen) the re-test covers the EG_RETEST_MAX/2 pairs
# nearest the threshold — where a discrepancy would flip the decision — and a seeded uniform
# sample of the rest, which catches any systematic error of the screen. Every pair's stored
# p-value is still compared with the threshold.
EG_RETEST_MAX = 200


def eg_retest_selection(pairs: pd.DataFrame, limit: int = EG_RETEST_MAX) -> tuple[pd.DataFrame, str]:
    """The rows of ``pairs`` the p-value gate re-tests with statsmodels, and how they were chosen.

    Parameters
    ----------
    pairs : DataFrame
        ``cointegrated_pairs`` rows (``pair_id``, ``eg_pvalue``, …).
    limit : int
        Most rows to re-test.

    Returns
    -------
    (DataFrame, str)
        All rows when there are at most ``limit``; otherwise the ``limit // 2`` largest eg_pvalue
        (nearest the threshold) and a uniform sample of the others, seeded from the sorted pair
        ids (the same pairs give the same selection); and a sentence saying which.
    """
    if len(pairs) <= limit:
        return pairs, f"all {len(pairs)} pairs"
    ordered = pairs.sort_values(["eg_pvalue", "pair_id"], ascending=[False, True], kind="mergesort")
    nearest = ordered.iloc[: limit // 2]
    rest = ordered.iloc[limit // 2 :]
    seed = zlib.crc32("|".join(sorted(pairs["pair_id"])).encode())
    sampled = rest.iloc[np.sort(np.random.default_rng(seed).choice(len(rest), limit - len(nearest), replace=False))]
    return (
        pd.concat([nearest, sampled]),
        f"{len(nearest)} nearest eg_pvalue_max + {len(sampled)} sampled (seed {seed}) of {len(pairs)} pairs",
    )


def cointegrated_pairs_results(
    pairs: pd.DataFrame, log_prices: pd.DataFrame, strategy: StrategySettings
) -> list[dg.AssetCheckResult]:
    """Threshold gates; the p-values are re-tested with statsmodels ``coint`` (the reference).

    Every pair's stored p-value must be below eg_pvalue_max; the re-tested pairs
    (:func:`eg_retest_selection`) must also be below it by statsmodels and within 1e-6 of it.
    """
    from statsmodels.tsa.stattools import coint

    low_corr = sorted(pairs.loc[pairs["correlation"] < strategy.correlation_min, "pair_id"])
    failures = [
        f"{row.pair_id} (stored p={row.eg_pvalue:.4g})"
        for row in pairs.itertuples()
        if not row.eg_pvalue < strategy.eg_pvalue_max
    ]
    retested, selection = eg_retest_selection(pairs)
    max_gap = 0.0
    for row in retested.itertuples():
        _, p_ref, _ = coint(log_prices[row.y].to_numpy(), log_prices[row.x].to_numpy(), trend="c", autolag="aic")
        max_gap = max(max_gap, abs(p_ref - row.eg_pvalue))
        if not (p_ref < strategy.eg_pvalue_max) or abs(p_ref - row.eg_pvalue) > 1e-6:
            failures.append(f"{row.pair_id} (stored p={row.eg_pvalue:.4g}, statsmodels p={p_ref:.4g})")
    return [
        _result(
            "correlation_above_min",
            "cointegrated_pairs",
            not low_corr,
            ERROR,
            threshold=strategy.correlation_min,
            violations=_first(low_corr) or "none",
            pairs=len(pairs),
        ),
        _result(
            "eg_pvalue_below_max",
            "cointegrated_pairs",
            not failures,
            ERROR,
            threshold=strategy.eg_pvalue_max,
            violations=_first(failures) or "none",
            max_abs_diff_vs_statsmodels=float(max_gap),
            pairs=len(pairs),
            retested_with_statsmodels=len(retested),
            retest_selection=selection,
        ),
    ]


# --- garch_models --------------------------------------------------------------------------
def garch_results(fits: pd.DataFrame, strategy: StrategySettings) -> list[dg.AssetCheckResult]:
    alpha = strategy.diagnostics_alpha
    converged = fits[fits["converged"]] if not fits.empty else fits
    flagged = sorted(
        f"{r.pair_id} (LB p={r.ljung_box_p:.3g}, ARCH-LM p={r.arch_lm_p:.3g})"
        for r in converged.itertuples()
        if r.ljung_box_p < alpha or r.arch_lm_p < alpha
    )
    not_converged = sorted(fits.loc[~fits["converged"], "pair_id"]) if not fits.empty else []
    return [
        _result(
            "residual_diagnostics", "garch_models", not flagged, WARN, alpha=alpha, flagged=_first(flagged) or "none"
        ),
        _result(
            "garch_converged", "garch_models", not not_converged, WARN, not_converged=_first(not_converged) or "none"
        ),
    ]


# --- model_selection -----------------------------------------------------------------------
def model_selection_results(scores: pd.DataFrame, strategy: StrategySettings) -> list[dg.AssetCheckResult]:
    """Selected pairs must score above the threshold, and the composite must be the documented formula."""
    w = strategy.score_weights
    bad: list[str] = []
    for row in scores.itertuples():
        recomputed = (
            w[0] * row.aic_score + w[1] * row.forecast_score + w[2] * row.backtest_score + w[3] * row.diagnostic_score
        )
        if abs(recomputed - row.composite) > 1e-9:
            bad.append(f"{row.pair_id} (composite {row.composite:.4f} ≠ weighted sum {recomputed:.4f})")
        if row.selected and not row.composite > strategy.score_min:
            bad.append(f"{row.pair_id} (selected with composite {row.composite:.4f} ≤ {strategy.score_min})")
    return [
        _result(
            "composite_above_min",
            "model_selection",
            not bad,
            ERROR,
            threshold=strategy.score_min,
            violations=_first(bad) or "none",
            selected=int(scores["selected"].sum()) if not scores.empty else 0,
        )
    ]


PAPER_BOOK_CHECKS = [
    _spec(
        "paper_book",
        "exposure_within_limits",
        "At the session's close every leg's |notional| is at most max_position of equity and the book's ex-ante daily "
        "volatility (held shares × the covariance of risk_window sessions of close changes) at most max_portfolio_risk. "
        "ERROR: while its latest evaluation failed the signal job opens no position (exits still go out).",
        True,
    ),
    _spec(
        "paper_book",
        "drawdown_within_limit",
        "The book's drawdown (cumulative net P&L as a fraction of equity below its running maximum) is within max_drawdown (WARN).",
        False,
    ),
    _spec(
        "paper_book",
        "positions_match_walk_forward",
        "Every pair held at the close is held, on the same side, by the walk-forward's replay of the stored trading "
        "configs over the same session closes from the session the book opened it (WARN, naming pair and session).",
        False,
    ),
]


# --- a periodic strategy's selected_pairs ----------------------------------------------------------
def periodic_pairs_results(pairs: pd.DataFrame, closes: pd.DataFrame) -> list[dg.AssetCheckResult]:
    """A :class:`~pairs_assets.strategies.periodic.PeriodicStrategy`'s selection against its window:
    each pair's ``spread_std`` re-measured on the formation closes (ERROR, blocking the trading
    config), and every leg's close at the formation session (WARN)."""
    import numpy as np

    from pairs_assets.strategies.periodic import SPREAD_STD_TOLERANCE

    off, stale, worst = [], [], 0.0
    # a select() frame (hedge_ratio, spread_std) or the distance method's (β = 1, sigma)
    sigma_column = "spread_std" if "spread_std" in pairs.columns else "sigma"
    for row in pairs.to_dict("records"):
        beta, sigma = float(row.get("hedge_ratio", 1.0)), float(row[sigma_column])
        spread = np.log(closes[row["y"]]) - beta * np.log(closes[row["x"]]) - float(row["intercept"])
        spread = spread.to_numpy(float)
        spread = spread[np.isfinite(spread)]
        measured = [float(np.std(spread, ddof=d)) for d in (0, 1)] if len(spread) > 1 else [float("nan")]
        gap = min(abs(sigma - m) / m if m > 0 else float("inf") for m in measured)
        worst = max(worst, gap) if np.isfinite(gap) else float("inf")
        if not gap <= SPREAD_STD_TOLERANCE:
            off.append(f"{row['pair_id']} ({sigma_column} {sigma:.4g}, window σ {measured[0]:.4g})")
        for leg in (row["y"], row["x"]):
            if not np.isfinite(closes[leg].iloc[-1]):
                stale.append(f"{row['pair_id']}: {leg}")
    return [
        _result(
            "spread_std_matches_window",
            "selected_pairs",
            not off,
            ERROR,
            tolerance=SPREAD_STD_TOLERANCE,
            max_relative_gap=float(worst),
            violations=_first(off) or "none",
            pairs=len(pairs),
        ),
        _result(
            "legs_close_at_formation",
            "selected_pairs",
            not stale,
            WARN,
            formation_session=str(closes.index[-1].date()) if len(closes) else "none",
            violations=_first(stale) or "none",
        ),
    ]
