"""Replay the daily graph: the trading config of every as-of session, then the trades it implies.

Configs: for each as-of session D the exact :class:`~pairs_assets.quant.config_model.TradingConfig`
the daily graph writes for partition ``D|sector`` — the same stage functions
(:mod:`pairs_assets.quant.stages`) on the same windows, sliced from one in-memory closes panel
instead of read from the store per partition. Work is shared between sessions by two screens run
for all sessions at once: the rolling log-return correlations of every pair of the sector (running
sums), then Engle-Granger on every (pair, formation session) that reaches ``correlation_min`` (one
vectorised call per pair, the stage's own test; only formation sessions run stages, so with
``reselect_every`` = 21 one session in 21 is tested). A session where no pair passes both gets the empty config
without running the stages — the stages could only drop pairs from that set (stale symbols,
collinearity, Benjamini-Hochberg), never add one; a test checks screened and unscreened configs are
equal. Sessions that pass run every stage.

Trading (:func:`trade_configs`): the config for as-of D applies from session D+1 (its
``effective_session``). At each close t of the range the pairs of the config effective at t are
traded with the config's own numbers: spread ``s = ln y − β·ln x − a``, ``z = (s − mean)/σ_level``
with the GARCH-scaled σ of the signal job (:func:`pairs_assets.quant.signals.garch_zscore`), and
the one trading rule (:func:`pairs_assets.quant.rule.step`, a state machine per pair, which the
signal job also calls; band edges in :mod:`pairs_assets.quant.rule`). The recent backtest uses the
same entry, exit, stop and ``max_holding`` transitions through :func:`pairs_assets.quant.rule.positions`
— unit sized, ungated, on fixed terms, so without the sizing, the GRU gate, ``on_drop`` or the
ordering rule below:

* flat → enter when ``entry_z ≤ |z| < stop_z`` (short the spread when z > 0), sized by the config's
  ``sizing``, if the optional GRU gate agrees;
* long → stop when ``z ≤ −stop_z``, else exit when ``z ≥ −exit_z``; short symmetrically; after a
  stop no new entry of that pair until ``|z| < entry_z``; an exit may be followed by an entry on
  the same close;
* an open position whose pair is missing from the effective config: ``on_drop="exit"`` closes it at
  that close (``"config_drop"``); ``on_drop="keep"`` keeps trading it with the numbers of the last
  config that listed the pair until exit, stop or ``max_holding`` sessions (``"max_holding"``);
* a position held ``max_holding`` sessions is closed (``"max_holding"``; 0 = no limit);
* one position per unordered pair (:func:`pairs_assets.quant.rule.align_orderings`): a config that
  lists a held pair's legs in the other ordering (``MRK-PFE`` held, ``PFE-MRK`` listed) does not
  open a second position on the same bet — the held one is the pair that left the config
  (``on_drop``), and the new ordering trades once the pair is flat.

While a pair stays listed, each day's config gives its numbers (as the live signal job reads the
latest config). The output is a trades frame for :func:`pairs_assets.quant.walkforward.execution.execute`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pairs_assets.quant import rule
from pairs_assets.quant import signals as sig
from pairs_assets.quant.config_model import PairConfig, TradingConfig
from pairs_assets.quant.pipeline.primitives import (  # the daily graph's primitives; names kept here for callers
    SectorPanel,
    cointegration_screen,
    fingerprint_of,
    rolling_pair_correlations,
)
from pairs_assets.quant.pipeline.spec import Pipeline, Replay
from pairs_assets.quant.stages import (
    build_trading_config,
    empty_garch_frame,
    garch_stage_many,
    selection_stage,
    sigma_forecasts_at,
)
from pairs_assets.quant.strategy import Strategy
from pairs_assets.quant.walkforward.execution import TRADE_COLUMNS, empty_trades

__all__ = [
    "ON_DROP_CHOICES",
    "SectorPanel",
    "build_configs",
    "cointegration_screen",
    "trade_configs",
]

ON_DROP_CHOICES = rule.ON_DROP_CHOICES
#: the GARCH numbers behind the scores, kept beside each scored pair (the score study's raw inputs)
_SCORED_GARCH = ["n_obs", "aic", "bic", "aic_constant", "bic_constant", "forecast_ratio", "ljung_box_p", "arch_lm_p"]


#: the old private name (tests import it from here)
_rolling_pair_correlations = rolling_pair_correlations


def build_configs(
    panel: SectorPanel,
    as_of_sessions: Sequence[pd.Timestamp],
    effective_sessions: Sequence[pd.Timestamp],
    symbols: Sequence[str],
    strategy: Strategy,
    *,
    formation_of: Callable[[pd.Timestamp], pd.Timestamp] | None = None,
    models_for: Callable[[pd.Timestamp, pd.DataFrame, pd.DataFrame], pd.DataFrame | None] | None = None,
    progress: Callable[[int], None] | None = None,
    fingerprint_label: str = "walk-forward",
    scored: list | None = None,
    pipeline: Pipeline | None = None,
) -> dict[pd.Timestamp, TradingConfig]:
    """The trading config of every as-of session, as the daily graph writes it.

    The stages run once per formation session; a later config of the same trading period carries
    the formation's pairs and numbers with the GARCH σ forecast filtered forward to its own as-of
    session.

    Parameters
    ----------
    panel : SectorPanel
        The sector's closes (and row hashes).
    as_of_sessions : sequence of pandas.Timestamp
        Sessions of the panel.
    effective_sessions : sequence of pandas.Timestamp
        The session after each.
    symbols : sequence of str
        The sector's universe symbols.
    strategy : Strategy
    formation_of : callable, optional
        ``formation_of(as_of)``: the formation session of an as-of session
        (``strategy.reselect_every``); None: the as-of session itself.
    models_for : callable, optional
        ``models_for(formation, selected_pairs, closes)``: the GRU stage's output for the selected
        pairs; None: no GRU stage.
    progress : callable, optional
        Called after each session.
    fingerprint_label : str, default "walk-forward"
        The fingerprint without row hashes.
    scored : list, optional
        Every formation's scored pairs (selected or not: pair, legs, hedge ratio, score
        components, selected) are appended to it.
    pipeline : Pipeline, optional
        The stages to replay, in order (each stage's ``replay``); None: the default pipeline
        (:data:`pairs_assets.quant.pipeline.garch_gru.PIPELINE`), the one the daily graph's assets are
        generated from.

    Returns
    -------
    dict of pandas.Timestamp to TradingConfig
        ``{as_of: config}``.

    Raises
    ------
    InsufficientHistoryError
        A window starts before the panel.
    MissingBarsError
        A window has a gap (the message names the symbol).
    """
    symbols = sorted(symbols)
    closes = panel.closes[symbols]
    formation_sessions = [
        pd.Timestamp(formation_of(pd.Timestamp(d))) if formation_of is not None else pd.Timestamp(d)
        for d in as_of_sessions
    ]
    # Engle-Granger only where the stages can run: the formation sessions (a session not in the
    # panel is left to the stages' own error)
    formation_rows = closes.index.get_indexer(pd.DatetimeIndex(list(dict.fromkeys(formation_sessions))))
    screen = cointegration_screen(closes, strategy, at=formation_rows[formation_rows >= 0])
    strategy_dump = strategy.model_dump(mode="json")
    history_n = strategy.history_sessions
    empty_scores, _ = selection_stage(None, _empty_pairs(), empty_garch_frame(), strategy)
    # rows with a NaN in any symbol, cumulated: a window [a, b] is complete when no such row lies in it
    gaps = np.concatenate([[0], np.cumsum(closes.isna().to_numpy().any(axis=1))])
    empty_template: TradingConfig | None = None
    cohorts: dict[pd.Timestamp, tuple] = {}
    configs: dict[pd.Timestamp, TradingConfig] = {}
    # the pipeline's stages, in order, each on a block of formation sessions at once (GARCH: one
    # batched call); the last stage, the trading config, is built below for every as-of session
    replay = Replay(panel, symbols, strategy, screen, gaps, models_for, garch_many=garch_stage_many)
    stages = [stage for stage in (pipeline or _default_pipeline()) if stage.replay is not None]
    for position, (as_of, effective) in enumerate(zip(as_of_sessions, effective_sessions)):
        as_of = pd.Timestamp(as_of)
        formation_session = formation_sessions[position]
        if position % _BLOCK == 0:
            block = [fs for fs in dict.fromkeys(formation_sessions[position : position + _BLOCK]) if fs not in cohorts]
            replay.outputs = {}
            for stage in stages:
                replay.outputs[stage.name] = stage.replay(replay, block)
        end_f, end = panel.position(formation_session), panel.position(as_of)
        if formation_session not in cohorts:
            pairs = replay.outputs.get("cointegrated_pairs", {}).get(formation_session)
            if pairs is None:
                # no pair reaches correlation_min and passes Engle-Granger: the stages would find nothing
                cohorts = {formation_session: (None, [], None, empty_garch_frame(), empty_scores, None)}
            else:
                formation = panel.window(symbols, end_f, strategy.formation_window)
                legs = [] if pairs.empty else sorted(set(pairs["y"]) | set(pairs["x"]))
                garch = replay.outputs.get("garch_models", {}).get(formation_session, empty_garch_frame())
                scores = replay.outputs.get("model_selection", {}).get(formation_session, empty_scores)
                models = replay.outputs.get("gru_models", {}).get(formation_session)
                cohorts = {formation_session: (pairs, legs, formation, garch, scores, models)}
                if scored is not None and legs:
                    scored.append(
                        scores.merge(
                            pairs[["pair_id", "y", "x", "hedge_ratio", "intercept", "eg_pvalue", "half_life"]],
                            on="pair_id",
                        )
                        .merge(garch[["pair_id", *_SCORED_GARCH]], on="pair_id", how="left")
                        .assign(formation_session=formation_session)
                    )
        pairs, legs, formation, garch, scores, models = cohorts[formation_session]
        if panel.row_hashes is not None:
            formation_fp = panel.fingerprint(symbols, end_f, strategy.formation_window)
            history_fp = panel.fingerprint(legs, end, history_n) if legs else formation_fp
            fingerprint = fingerprint_of(formation_fp, history_fp, panel.source, strategy_dump)
        else:
            fingerprint = fingerprint_label
        dates = {"as_of_session": str(as_of.date()), "effective_session": str(pd.Timestamp(effective).date())}
        if not legs and empty_template is not None:
            configs[as_of] = empty_template.model_copy(
                update={
                    **dates,
                    "formation_session": str(formation_session.date()) if formation_session != as_of else None,
                    "input_fingerprint": fingerprint,
                }
            )
        else:
            if formation is None:  # the screen skipped the stages: the empty config, built once
                formation = panel.window(symbols, end_f, strategy.formation_window)
            if pairs is None:
                pairs = _empty_pairs()
            if legs and end > end_f:
                # later in the trading period: the formation's GARCH σ filtered forward to this as-of session
                garch = garch.assign(
                    sigma_forecast=garch["pair_id"].map(
                        sigma_forecasts_at(
                            panel.window(legs, end, strategy.garch_window + 1 + end - end_f), pairs, garch
                        )
                    )
                )
            configs[as_of] = build_trading_config(
                as_of=dates["as_of_session"],
                effective_session=dates["effective_session"],
                formation_session=str(formation_session.date()),
                sector=panel.sector,
                source=panel.source,
                symbols=symbols,
                pairs=pairs,
                garch=garch,
                scores=scores,
                models=models if models_for is not None else None,
                formation_closes=formation,
                strategy=strategy,
                fingerprint=fingerprint,
            )
            if not legs:
                empty_template = configs[as_of]
        if progress is not None:
            progress(1)
    return configs


#: as-of sessions whose formation sessions' stages run as one block (GARCH: one batched call)
_BLOCK = 256


def _default_pipeline():
    """The default strategy's pipeline (:data:`pairs_assets.quant.pipeline.garch_gru.PIPELINE`), imported on use."""
    from pairs_assets.quant.pipeline.garch_gru import PIPELINE

    return PIPELINE


def _empty_pairs() -> pd.DataFrame:
    from pairs_assets.quant.cointegration import PAIRS_COLUMNS

    return pd.DataFrame(
        {c: pd.Series(dtype=object if c in ("pair_id", "y", "x") else "float64") for c in PAIRS_COLUMNS}
    )


# --- trading ---------------------------------------------------------------------------------------


def _zscore(pair: PairConfig, price_y: float, price_x: float) -> float:
    s = math.log(price_y) - pair.hedge_ratio * math.log(price_x) - pair.intercept
    g = pair.garch
    garch = sig.GarchParams(
        mu=g.mu or 0.0,
        omega=g.omega if g.omega is not None else math.nan,
        alpha=g.alpha if g.alpha is not None else math.nan,
        beta=g.beta if g.beta is not None else math.nan,
        sigma_forecast=g.sigma_forecast if g.sigma_forecast is not None else math.nan,
        unconditional_sigma=g.unconditional_sigma,
    )
    z, _level, _scaled = sig.garch_zscore(s, pair.spread_mean, pair.spread_std, garch)
    return float(z)


def trade_configs(
    configs: dict[pd.Timestamp, TradingConfig],
    closes: pd.DataFrame,
    sessions: Sequence[pd.Timestamp],
    *,
    strategy_name: str = "default",
    on_drop: str = "keep",
    max_holding: int = 20,
    entry_gate: Callable[[PairConfig, pd.Timestamp, pd.Timestamp], bool] | None = None,
    bar_sessions: Sequence[pd.Timestamp] | None = None,
) -> pd.DataFrame:
    """Trades implied by daily configs over ``sessions`` (the decision closes); see the module docstring.

    Intraday bars: with ``bar_sessions``, ``sessions`` are bar times (``closes`` indexed by them,
    each symbol at its latest price up to the bar) and ``bar_sessions[i]`` is bar i's exchange
    session. Every bar is a decision, with the config effective in its session; ``max_holding``
    counts sessions, not bars; entries and exits are stamped with their bar (execute the trades on
    the same bar index: lag 1 = the next bar). Without it, one bar per session, as before.

    Parameters
    ----------
    configs : dict of pandas.Timestamp to TradingConfig
        The config of as-of D applies at the close of the session after D (its
        ``effective_session``).
    closes : pandas.DataFrame
        Sessions × symbols covering ``sessions``.
    sessions : sequence of pandas.Timestamp
    strategy_name : str, default "default"
    on_drop : {"keep", "exit"}, default "keep"
        An open position whose pair leaves the next config.
    max_holding : int, default 20
        Sessions (0 = no limit).
    entry_gate : callable, optional
        ``entry_gate(pair, as_of, session)``: a veto of an entry (the GRU gate).

    Returns
    -------
    pandas.DataFrame
        :data:`pairs_assets.quant.walkforward.execution.TRADE_COLUMNS`, decisions at closes within
        ``sessions`` only; positions still open at the end have a NaT exit.
    """
    if on_drop not in ON_DROP_CHOICES:
        raise ValueError(f"on_drop must be one of {ON_DROP_CHOICES}, got {on_drop!r}")
    if isinstance(max_holding, bool) or not isinstance(max_holding, (int, np.integer)) or max_holding < 0:
        raise ValueError(f"max_holding must be a whole number of sessions >= 0, got {max_holding!r}")
    max_holding = int(max_holding)
    by_effective = {pd.Timestamp(c.effective_session): c for c in configs.values()}
    rows: list[tuple] = []
    states: dict[str, rule.PairState] = {}
    sector = next(iter(configs.values())).sector if configs else ""
    price = closes.to_dict("series")

    def record(pos: rule.PairState, session, z: float, reason: str) -> None:
        p = pos.entry_terms
        rows.append(
            (
                strategy_name,
                sector,
                p.pair_id,
                p.y,
                p.x,
                pos.side,
                pos.weight_y,
                pos.weight_x,
                pos.entry_bar,
                session,
                pos.entry_z,
                z,
                reason,
            )
        )

    if bar_sessions is not None and len(bar_sessions) != len(sessions):
        raise ValueError(f"bar_sessions has {len(bar_sessions)} entries for {len(sessions)} bars")
    days = [pd.Timestamp(s) for s in (sessions if bar_sessions is None else bar_sessions)]
    ordinals = list(range(len(days))) if bar_sessions is None else list(pd.factorize(pd.DatetimeIndex(days))[0])
    for ordinal, session, day in zip(ordinals, sessions, days):
        session = pd.Timestamp(session)
        config = by_effective.get(day)
        listed = {p.pair_id: p for p in config.pairs} if config is not None else {}
        if listed:  # one position per unordered pair: a flipped ordering is the held one's drop
            listed, states = rule.align_orderings(listed, states)
        trained_at = pd.Timestamp(config.formation_session or config.as_of_session) if config is not None else None
        # held pairs and the effective config's pairs, one rule step each (quant.rule)
        for pair_id in sorted(set(listed) | {k for k, v in states.items() if v.side}):
            pair = listed.get(pair_id)
            state = states.get(pair_id)
            if state is None:
                state = rule.PairState.flat(pair_id, pair.y, pair.x)
            if pair is not None:
                terms = pair
            elif on_drop == "exit":
                terms = state.entry_terms  # the z reported at a drop: the entry config's
            else:
                terms = state.terms
            z = _zscore(terms, price[terms.y][session], price[terms.x][session])
            gate = None
            if pair is not None and entry_gate is not None:
                gate = functools.partial(entry_gate, pair, trained_at, day)
            obs = rule.Observation(
                session,
                day,
                int(ordinal),
                z,
                pair,
                sizing=pair.sizing.model_dump() if pair is not None else None,
                entry_allowed=gate,
            )
            new, done = rule.step(state, obs, on_drop=on_drop, max_holding=max_holding)
            if done.closed is not None:
                record(done.closed, session, z, done.exit_reason)
            states[pair_id] = new
    for pair_id in sorted(states):
        pos = states[pair_id]
        if pos.side:
            record(pos, pd.NaT, math.nan, "range_end")
    if not rows:
        return empty_trades()
    frame = pd.DataFrame(rows, columns=TRADE_COLUMNS)
    return (
        frame.astype(empty_trades().dtypes.to_dict())
        .sort_values(["entry_session", "pair_id"], kind="mergesort")
        .reset_index(drop=True)
    )
