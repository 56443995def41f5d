"""trading_signals: the 5-minute pair signals of a sector, from its trading config and the latest bars.

A run for partition ``D|sector`` (D the as-of session of the config) trades the session after D:
it reads the sector's trading config (as of D) from the store, the pairs' session closes up to D's
close (the daily graph's bar source) and the latest bar of every leg after D's close (any source:
the live stream's), loads each pair's registered GRU from the model registry, and computes per
pair the spread, the z-score on the GARCH forecast, the GRU reversion probability, the decision
with its confidence, the volatility-targeted size and the correlation-drift flag
(:mod:`pairs_assets.quant.signals`). Rows are upserted into the store's ``trading_signals`` table
(key: bar_timestamp, sector, pair_id — a re-run for the same bars replaces, never doubles), and
the broker turns actionable signals into two leg orders (dry-run unless configured otherwise).

The store's document is read through the typed model
(:meth:`pairs_assets.quant.config_model.TradingConfig.parse`): a config of an unknown
``schema_version``, or with a missing, unknown or malformed field, fails the run with a
:class:`~pairs_assets.quant.config_model.TradingConfigError` naming the partition and the field; so
does a document that is not a JSON object (truncated, empty, an array), in one line naming the file.

A pair whose model cannot be loaded (or has too little history for a GRU window) still gets a
signal, without GRU gating, flagged ``model_unavailable`` / ``gru_input_unavailable``.

**The trading rule and its state.** The decision is the one trading rule
(:func:`pairs_assets.quant.rule.step`, the walk-forward's): each pair's state (side, shares,
entry, sessions held, stopped flag, its terms) is read from the store's ``pair_states`` table, the
run's bar is applied, and the new state is written back after the orders. A bar already applied
changes nothing (no row, no order); an older bar fails the run naming the pair. A pair held but
missing from today's config follows ``on_drop`` with its last config's terms; ``max_holding``
counts exchange sessions. One position per unordered pair (:func:`pairs_assets.quant.rule.align_orderings`,
as in the walk-forward): a config listing a held pair's legs in the other ordering gets no signal
for that ordering (skipped, naming the held one) — the held position is managed as a drop — and a
flat pair's state moves to the listed ordering (its stopped flag kept); a row the pair left while
flat stays in ``pair_states`` and is ignored (the held, else the latest, state is the pair's).

**Implausible bars.** Every bar of the session is checked first against its symbol's last close
with the jump rule of :func:`pairs_assets.quant.outliers.price_jumps` (the ``raw_bars`` check's
settings, :func:`screen_session_bars`): a failing bar (a replayed 2017 close re-stamped to now, an
absurd print) is never priced, applied to the rule or traded on. Its pairs' rows are flagged
``rejected_bar:<symbol>``; a pair with no other new bar gets a ``hold`` row and no order (metadata
``rejected_bars`` and ``not_traded`` say why; the run log warns per bar).

**Live bars only, unless replay.** Outside replay mode a run trades only on the bars of the live
source (``live_source``: ``PAIRS_LIVE_SOURCE``, default ``alpaca:<feed>-stream``, and its
``+proxy:`` stand-ins); any other source's bars in the session — a recycler's, re-stamped to now —
are ignored and counted in the metadata's ``ignored_bars`` line. Replay mode (run config ``replay``,
set by the signal sensor from the daemon's ``PAIRS_SIGNAL_REPLAY``; for a run launched by hand the
step process's ``PAIRS_SIGNAL_REPLAY``) trades on every source; the run is tagged ``pairs/replay``
and ``pairs/live_source``, each row is flagged ``replay``.

**Point in time.** A run reads only bars stamped after the as-of session's close and at or before
``min(bar_cutoff or now, the effective session's close)``: a run for a past partition never sees
a bar of a later session.
"""

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field, field_validator

from pairs_assets import partitions
from pairs_assets.assets.common import markdown_table, reasons_table, session_of
from pairs_assets.assets.risk_gate import exposure_block
from pairs_assets.errors import PairsError
from pairs_assets.quant import paper_book as pb
from pairs_assets.quant import rule
from pairs_assets.quant import signals as sig
from pairs_assets.quant.config_model import PairConfig, TradingConfig
from pairs_assets.quant.outliers import price_jumps
from pairs_assets.settings import ENV_SIGNAL_REPLAY, StrategySettings, live_source_from_env, signal_replay_from_env
from pairs_assets.strategies.base import NAME_PATTERN
from pairs_assets.util import split_partition_key, to_naive_utc, to_utc
from resources.bar_sources import BarSource
from resources.broker import BrokerResource, PendingWrites
from resources.market_data import (
    PRIMARY_STRATEGY,
    MarketDataStore,
    bars_table,
    pair_states_table,
    trading_signals_table,
)

GROUP = "live_signals"
ASSET_NAME = "trading_signals"


class MissingTradingConfigError(PairsError, LookupError):
    """No trading config for the partition's as-of session and sector."""


class UnheldPositionError(PairsError, ValueError):
    """The broker's book holds a symbol of the sector's pairs that no held pair state accounts for."""


class SignalRunConfig(dg.Config):
    """Run settings of the signal job (the sensor fills ``bar_cutoff``, ``strategy`` and the strategy's rule settings)."""

    strategy: str = Field(
        PRIMARY_STRATEGY,
        pattern=NAME_PATTERN,
        description="The strategy traded: its trading config, pair states, signals and orders (the store's "
        "'strategy' column); the account's risk limits are shared with every other strategy.",
    )
    bar_cutoff: str | None = Field(
        None, description="Use bars stamped at or before this UTC time (ISO 8601); default: now."
    )
    execute: bool = Field(True, description="Send actionable signals to the broker (dry-run unless configured).")
    history_sessions: int = Field(
        sig.DEFAULT_HISTORY_SESSIONS,
        ge=40,
        description="Sessions of closes read for the GRU window, the GARCH filter and the drift check.",
    )
    drift_window: int = Field(sig.DEFAULT_DRIFT_WINDOW, ge=5, description="Sessions of returns for the drift check.")
    drift_tolerance: float = Field(
        sig.DEFAULT_DRIFT_TOLERANCE, gt=0, le=2, description="Drop below the formation correlation that flags drift."
    )
    trade_on_drift: bool = Field(False, description="Open positions even when the pair's correlation drifted.")
    on_drop: str = Field(
        rule.DEFAULT_ON_DROP,
        description="A held pair missing from today's config: 'keep' (trade it with its last "
        "config's terms until exit, stop or max_holding) or 'exit' (close it).",
    )
    max_holding: int = Field(
        rule.DEFAULT_MAX_HOLDING, ge=0, description="Close a position held this many exchange sessions (0 = no limit)."
    )
    replay: bool | None = Field(
        None,
        description="Replay mode: trade on the bars of any source (a recycler's replayed ones too); the rows are "
        "flagged 'replay' and the run tagged pairs/replay=true. Default: PAIRS_SIGNAL_REPLAY of the process running "
        "the step (the signal sensor always sets it, from the daemon's environment).",
    )
    live_source: str | None = Field(
        None,
        description="Outside replay mode only this store source's bars (and its '+proxy:' stand-ins) are traded "
        "on. Default: PAIRS_LIVE_SOURCE, else alpaca:<PAIRS_ALPACA_FEED>-stream (what `pairs stream --alpaca` stores).",
    )

    @field_validator("on_drop")
    @classmethod
    def _on_drop(cls, value: str) -> str:
        if value not in rule.ON_DROP_CHOICES:
            raise ValueError(f"on_drop must be one of {rule.ON_DROP_CHOICES}, got {value!r}")
        return value


# --- reading bars --------------------------------------------------------------------------------


def session_closes(bars: pd.DataFrame) -> pd.DataFrame:
    """Last close per (New York session date, symbol) → sessions × symbols."""
    if bars.empty:
        return pd.DataFrame()
    frame = bars.assign(session=session_of(bars["timestamp"])).sort_values(["symbol", "timestamp"])
    last = frame.groupby(["session", "symbol"])["close"].last()
    return last.unstack("symbol").sort_index()


def read_session_bars(
    store: MarketDataStore,
    symbols: list[str],
    after: pd.Timestamp,
    cutoff: pd.Timestamp,
    *,
    live_source: str | None = None,
    ignored: Counter | None = None,
) -> pd.DataFrame:
    """Every bar of ``symbols`` in (after, cutoff], one per (symbol, timestamp) over all sources (real
    sources before proxies), sorted by symbol and time; columns symbol, timestamp (UTC), close, source, is_proxy.
    With ``live_source``, only that source's bars and its ``+proxy:`` stand-ins; the others are counted
    per source in ``ignored``."""
    t = bars_table.c
    lo, hi = to_naive_utc(after), to_naive_utc(cutoff)
    query = sa.select(t.symbol, t.timestamp, t.close, t.source).where(
        t.symbol.in_(sorted(set(symbols))), t.timestamp > lo, t.timestamp <= hi
    )
    with store.engine.connect() as conn:
        frame = pd.read_sql_query(query, conn)
    if live_source is not None and not frame.empty:
        source = frame["source"].astype(str)
        live = (source == live_source) | source.str.startswith(f"{live_source}+proxy:")
        if ignored is not None:
            ignored.update(source[~live].tolist())
        frame = frame[live].reset_index(drop=True)
    if frame.empty:
        return frame.assign(is_proxy=pd.Series(dtype=bool))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")
    frame["is_proxy"] = frame["source"].astype(str).str.contains(r"\+proxy:", regex=True)
    frame = frame.sort_values(["symbol", "timestamp", "is_proxy", "source"]).drop_duplicates(["symbol", "timestamp"])
    return frame.reset_index(drop=True)


def screen_session_bars(
    session_bars: pd.DataFrame, history: pd.DataFrame, strategy: StrategySettings
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The session's bars that pass the jump rule of :func:`pairs_assets.quant.outliers.price_jumps`
    against their symbol's last close (the as-of session's, scored on the robust scale of the session
    closes before it, with the ``raw_bars`` check's settings), and the rejected ones: symbol → one
    reason per bar. A replayed or implausible print is never applied, priced or traded on; a symbol
    without session closes is not judged (its pairs are skipped anyway)."""
    if session_bars.empty:
        return session_bars, {}
    keep = np.ones(len(session_bars), dtype=bool)
    rejected: dict[str, list[str]] = {}
    for symbol, group in session_bars.groupby("symbol", sort=True):
        if symbol not in history.columns:
            continue
        closes = history[symbol].dropna().iloc[-(strategy.jump_window + 1) :]
        if closes.empty:
            continue
        past = pd.DataFrame(
            {
                "symbol": symbol,
                "timestamp": pd.to_datetime(closes.index.astype(str)).tz_localize("UTC"),
                "close": closes.to_numpy(dtype="float64"),
            }
        )
        last_session = str(closes.index[-1])[:10]
        for position, row in zip(group.index, group.itertuples()):
            bar = pd.DataFrame({"symbol": [symbol], "timestamp": [row.timestamp], "close": [float(row.close)]})
            found = price_jumps(
                pd.concat([past, bar], ignore_index=True),
                window=strategy.jump_window,
                z_max=strategy.jump_z_max,
                min_abs_log_return=strategy.jump_min_abs_log_return,
                min_history=strategy.jump_min_history,
                price_max=strategy.price_max,
                check_from=row.timestamp,
                short_history_ratio_max=strategy.jump_short_history_ratio_max,
                price_min=strategy.price_min,
            )
            if found.empty:
                continue
            keep[session_bars.index.get_loc(position)] = False
            jump = found.iloc[0]
            rejected.setdefault(symbol, []).append(
                f"{symbol} bar {row.timestamp.isoformat()} ({row.source}) close {float(row.close):g} vs last close "
                f"{float(closes.iloc[-1]):g} ({last_session}): {jump['reason']} (log return {jump['log_return']:+.3f}"
                + (f", robust z {jump['robust_z']:+.1f})" if np.isfinite(jump["robust_z"]) else ")")
            )
    return session_bars[keep].reset_index(drop=True), rejected


def pair_bar_path(
    p: sig.PairParams,
    closes: pd.DataFrame,
    bars: dict[str, pd.DataFrame],
    as_of_close: pd.Timestamp,
    last_bar: pd.Timestamp | None,
) -> list[sig.PairInput]:
    """The pair's bars to apply in order: one ``PairInput`` per time either leg has a bar in the
    session (each leg at its latest price up to then, the as-of close before its first bar), after
    ``last_bar``; the as-of close when no bar arrived. When the session's latest bar is not after
    ``last_bar`` the path is that one bar (the rule then changes nothing, or refuses an older bar)."""
    legs = {leg: bars.get(symbol) for leg, symbol in (("y", p.y), ("x", p.x))}
    stamps = sorted(set().union(*(set(frame["timestamp"]) for frame in legs.values() if frame is not None)))
    if not stamps:
        return [sig.PairInput(p, closes, None, None, pd.Timestamp(as_of_close), ["no_bar_after_as_of"])]
    if last_bar is not None and stamps[-1] > last_bar:
        stamps = [t for t in stamps if t > last_bar]
    elif last_bar is not None:
        stamps = stamps[-1:]
    path = []
    for t in stamps:
        flags: list[str] = []
        prices = {}
        for leg, symbol in (("y", p.y), ("x", p.x)):
            frame = legs[leg]
            seen = frame[frame["timestamp"] <= t] if frame is not None else None
            if seen is None or seen.empty:
                prices[leg] = float(closes[leg].iloc[-1])
                flags.append("one_leg_stale")
            else:
                prices[leg] = float(seen["close"].iloc[-1])
                if bool(seen["is_proxy"].iloc[-1]):
                    flags.append(f"proxy_bars:{symbol}")
        path.append(sig.PairInput(p, closes, prices["y"], prices["x"], pd.Timestamp(t), flags))
    return path


def build_pair_inputs(
    pairs: list[sig.PairParams],
    history: pd.DataFrame,
    latest: pd.DataFrame,
    as_of_close: pd.Timestamp,
) -> tuple[list[sig.PairInput], dict[str, str]]:
    """One ``PairInput`` per pair with complete closes; skipped pairs with their reason."""
    inputs, skipped = [], {}
    for p in pairs:
        missing = [s for s in (p.y, p.x) if s not in history.columns]
        if missing:
            skipped[p.pair_id] = f"no session closes of {', '.join(missing)} up to the as-of session"
            continue
        closes = history[[p.y, p.x]].dropna()
        closes.columns = ["y", "x"]
        if len(closes) < 2:
            skipped[p.pair_id] = f"only {len(closes)} session(s) with closes of both {p.y} and {p.x}"
            continue
        flags: list[str] = []
        prices, stamps = {}, []
        for leg, symbol in (("y", p.y), ("x", p.x)):
            if symbol in latest.index:
                row = latest.loc[symbol]
                prices[leg] = float(row["close"])
                stamps.append(row["timestamp"])
                if bool(row["is_proxy"]):
                    flags.append(f"proxy_bars:{symbol}")
            else:
                prices[leg] = None
        if prices["y"] is None and prices["x"] is None:
            flags.append("no_bar_after_as_of")
            latest_y = latest_x = None
            bar_timestamp = as_of_close
        else:
            if prices["y"] is None or prices["x"] is None:
                flags.append("one_leg_stale")
            latest_y = prices["y"] if prices["y"] is not None else float(closes["y"].iloc[-1])
            latest_x = prices["x"] if prices["x"] is not None else float(closes["x"].iloc[-1])
            bar_timestamp = max(stamps)
        inputs.append(sig.PairInput(p, closes, latest_y, latest_x, pd.Timestamp(bar_timestamp), flags))
    return inputs, skipped


# --- the rule's state ---------------------------------------------------------------------------

#: exchange-session ordinals count from here (only differences matter: max_holding)
ORDINAL_EPOCH = "1990-01-02"


def session_ordinal(session: str | pd.Timestamp) -> int:
    """The exchange session's ordinal (consecutive sessions differ by 1)."""
    return len(partitions.sessions_in_range(ORDINAL_EPOCH, session)) - 1


def _terms_json(terms: Any) -> str | None:
    return None if terms is None else terms.model_dump_json()


def _terms_of(text: Any, pair_id: str, field: str, parsed: dict[str, PairConfig] | None = None) -> PairConfig | None:
    """A state's terms (a config's pair entry as JSON), validated; ``parsed`` reuses the entry of a
    text already read (a state's entry terms and current terms are usually the same document, and
    the model is frozen)."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if parsed is not None and text in parsed:
        return parsed[text]
    try:
        terms = PairConfig.model_validate_json(text)
    except ValueError as exc:
        raise rule.RuleInputError(
            f"pair {pair_id}: state {field} is not a trading config pair entry: {str(exc)[:200]}"
        ) from None
    if parsed is not None:
        parsed[text] = terms
    return terms


def _stamp(value: Any) -> pd.Timestamp | None:
    if value is None or pd.isna(value):
        return None
    return to_utc(pd.Timestamp(value))


def read_pair_states(
    store: MarketDataStore, sector: str, strategy: str = PRIMARY_STRATEGY
) -> dict[str, rule.PairState]:
    """``strategy``'s pair states of the sector from the store (validated: a bad share count fails naming
    pair and field)."""
    t = pair_states_table.c
    frame = store.read_table(pair_states_table, sa.and_(t.sector == sector, t.strategy == strategy))
    states: dict[str, rule.PairState] = {}
    parsed: dict[str, PairConfig] = {}
    for row in frame.to_dict("records"):
        pid = str(row["pair_id"])

        def number(name: str, row: dict = row) -> float:
            value = row[name]
            return math.nan if value is None else float(value)

        states[pid] = rule.PairState(
            pair_id=pid,
            y=str(row["y"]),
            x=str(row["x"]),
            side=int(row["side"]),
            weight_y=float(row["weight_y"]),
            weight_x=float(row["weight_x"]),
            shares_y=number("shares_y"),
            shares_x=number("shares_x"),
            entry_session=row["entry_session"] or None,
            entry_ordinal=int(row["entry_ordinal"]),
            entry_bar=_stamp(row["entry_bar"]),
            entry_z=number("entry_z"),
            sessions_held=int(row["sessions_held"]),
            stopped=bool(row["stopped"]),
            entry_terms=_terms_of(row["entry_terms"], pid, "entry_terms", parsed),
            terms=_terms_of(row["terms"], pid, "terms", parsed),
            last_bar=_stamp(row["last_bar"]),
        )
    return states


def state_row(
    state: rule.PairState, *, sector: str, as_of: str, run_id: str, strategy: str = PRIMARY_STRATEGY
) -> dict[str, Any]:
    """A ``pair_states`` row of ``strategy``'s state."""
    return {
        "sector": sector,
        "pair_id": state.pair_id,
        "strategy": strategy,
        "y": state.y,
        "x": state.x,
        "side": int(state.side),
        "weight_y": float(state.weight_y),
        "weight_x": float(state.weight_x),
        "shares_y": float(state.shares_y),
        "shares_x": float(state.shares_x),
        "entry_session": state.entry_session,
        "entry_ordinal": int(state.entry_ordinal),
        "entry_bar": None if state.entry_bar is None else to_naive_utc(pd.Timestamp(state.entry_bar)),
        "entry_z": float(state.entry_z),
        "sessions_held": int(state.sessions_held),
        "stopped": bool(state.stopped),
        "entry_terms": _terms_json(state.entry_terms),
        "terms": _terms_json(state.terms),
        "last_bar": None if state.last_bar is None else to_naive_utc(pd.Timestamp(state.last_bar)),
        "as_of_session": as_of,
        "run_id": run_id,
    }


def read_account_states(store: MarketDataStore) -> dict[str, rule.PairState]:
    """Every strategy's held positions in every sector, keyed ``<strategy>/<sector>/<pair_id>``: the
    legs, side, weights and shares only (what the account holds; the terms are not parsed). One query."""
    t = pair_states_table.c
    query = sa.select(t.strategy, t.sector, t.pair_id, t.y, t.x, t.side, t.weight_y, t.weight_x, t.shares_y, t.shares_x)
    with store.engine.connect() as conn:
        rows = conn.execute(query.where(t.side != 0)).all()
    out = {}
    for row in rows:
        out[f"{row.strategy}/{row.sector}/{row.pair_id}"] = rule.PairState(
            pair_id=str(row.pair_id),
            y=str(row.y),
            x=str(row.x),
            side=int(row.side),
            weight_y=float(row.weight_y),
            weight_x=float(row.weight_x),
            shares_y=math.nan if row.shares_y is None else float(row.shares_y),
            shares_x=math.nan if row.shares_x is None else float(row.shares_x),
        )
    return out


def signed_shares(states: Iterable[rule.PairState]) -> dict[str, float]:
    """The signed shares per symbol that held ``states`` account for (the sign from the side and weights)."""
    out: dict[str, float] = {}
    for st in states:
        if not st.side:
            continue
        out[st.y] = out.get(st.y, 0.0) + math.copysign(st.shares_y, st.weight_y or st.side)
        out[st.x] = out.get(st.x, 0.0) + math.copysign(st.shares_x, st.weight_x or -st.side)
    return out


# --- models --------------------------------------------------------------------------------------


def _eval_mode(model: Any) -> None:
    """Switch dropout off. A ``torch.export`` module (MLflow 3's default pytorch flavour) was exported
    in eval mode and refuses ``eval()`` (NotImplementedError): nothing to switch."""
    try:
        model.eval()
    except NotImplementedError:
        pass


def gru_probabilities(
    inputs: list[sig.PairInput], model_registry: Any, seq_len: int, gate: bool = True
) -> tuple[dict[str, float | None], dict[str, list[str]], dict[str, str]]:
    """GRU reversion probabilities per pair (None: ungated), flags per pair, model load failures.

    ``gate`` is the config's ``gru_gate``: when off, no model is loaded and every pair is flagged
    ``gru_gate_off`` (ungated by the config's choice, not by a failure).

    Any failure to load a model is recorded (model → reason) and its pairs go ungated. Each model
    sees the daily features of the session closes up to the as-of session
    (:func:`pairs_assets.quant.signals.gru_sequence`), as in training — no intraday row; all pairs'
    inputs are built in one vectorised pass and all models run in one forward pass (each pair's own
    model, stacked: :class:`pairs_assets.quant.gru.StackedGRU`), model by model only where the
    registry's modules cannot be stacked.
    """
    probabilities: dict[str, float | None] = {}
    flags: dict[str, list[str]] = {}
    failures: dict[str, str] = {}
    by_model: dict[tuple[str, str], list[sig.PairInput]] = {}
    for pair in inputs:
        p = pair.params
        probabilities[p.pair_id] = None
        if not gate:
            flags[p.pair_id] = ["gru_gate_off"]
        elif not p.model_name or p.model_version is None:
            flags[p.pair_id] = ["no_model"]
        elif p.model_beats_baselines is False:
            flags[p.pair_id] = ["model_below_baselines"]
        else:
            by_model.setdefault((p.model_name, p.model_version), []).append(pair)
    loaded: dict[tuple[str, str], Any] = {}
    for (name, version), pairs in sorted(by_model.items()):
        label = f"{name}/{version}"
        try:
            model = model_registry.load_model(name, version)
            _eval_mode(model)
        except Exception as exc:  # any failure to load means "no gating", recorded with its reason
            failures[label] = f"{type(exc).__name__}: {str(exc)[:300]}"
            for pair in pairs:
                flags[pair.params.pair_id] = ["model_unavailable"]
            continue
        loaded[(name, version)] = model
    # every gated pair's input in one vectorised pass (bit for bit gru_sequence's)
    gated = [(key, pair) for key, pairs in sorted(by_model.items()) if key in loaded for pair in pairs]
    ready: list[tuple[tuple[str, str], str, np.ndarray]] = []
    for (key, pair), sequence in zip(gated, sig.gru_sequences([pair for _, pair in gated], seq_len)):
        if isinstance(sequence, Exception):
            flags[pair.params.pair_id] = ["gru_input_unavailable"]
            failures.setdefault(f"{key[0]}/{key[1]}:{pair.params.pair_id}", str(sequence)[:300])
        else:
            ready.append((key, pair.params.pair_id, sequence))
    if not ready:
        return probabilities, flags, failures
    values: dict[str, float] = {}
    try:
        # one forward pass: each pair's own model stacked with the others' (quant.gru.StackedGRU)
        from pairs_assets.quant.gru import predict_proba_many

        out = predict_proba_many([loaded[key] for key, _, _ in ready], np.stack([seq for *_, seq in ready]))
        values = {pair_id: float(v) for (_, pair_id, _), v in zip(ready, out)}
    except Exception:  # a model that is not a GRUClassifier's weights: each model runs on its own
        values = _forward_per_model(loaded, ready, flags, failures)
    for pair_id, value in values.items():
        if math.isfinite(value) and 0.0 <= value <= 1.0:
            probabilities[pair_id] = float(value)
        else:
            flags[pair_id] = ["gru_output_invalid"]
    return probabilities, flags, failures


def _forward_per_model(loaded: dict, ready: list, flags: dict, failures: dict) -> dict[str, float]:
    """Probabilities model by model (the fallback of the stacked forward pass); failures recorded."""
    import torch

    values: dict[str, float] = {}
    for key in sorted({key for key, _, _ in ready}):
        ids = [pair_id for k, pair_id, _ in ready if k == key]
        batch = np.stack([seq for k, _, seq in ready if k == key])
        try:
            with torch.no_grad():
                out = loaded[key](torch.as_tensor(batch, dtype=torch.float32))
            result = out.detach().double().cpu().numpy().reshape(-1)
            if len(result) != len(ids):
                raise ValueError(f"model returned {len(result)} probabilities for {len(ids)} sequences")
        except Exception as exc:  # a model that loads but fails on our input: ungated, recorded
            failures[f"{key[0]}/{key[1]}"] = f"inference failed: {type(exc).__name__}: {str(exc)[:300]}"
            for pair_id in ids:
                flags[pair_id] = ["model_unavailable"]
            continue
        values.update(zip(ids, (float(v) for v in result)))
    return values


def reconcile(states: dict[str, rule.PairState], book: dict[str, dict[str, float]]) -> dict[str, str]:
    """Pairs whose state's shares differ from the broker's recorded position (signed shares per leg
    from its orders): pair → what differs. The state's sign follows its side and the book's legs."""
    out = {}
    for pair_id, state in sorted(states.items()):
        held = book.get(pair_id, {})
        got = {leg: float(held.get(leg, 0.0)) for leg in ("y", "x")}
        want = {"y": state.shares_y, "x": state.shares_x}
        diffs = [
            f"{leg}: state {want[leg]:g} shares, book {abs(got[leg]):g}"
            for leg in ("y", "x")
            if abs(abs(got[leg]) - want[leg]) > 1e-9
        ]
        if state.side == 0 and any(got.values()):
            diffs.insert(
                0, "state flat, book holds " + ", ".join(f"{leg} {got[leg]:g}" for leg in ("y", "x") if got[leg])
            )
        if state.side and got["y"] and (got["y"] > 0) != (state.side > 0):
            diffs.insert(0, f"state side {state.side:+d}, book's y leg {got['y']:g}")
        if diffs:
            out[pair_id] = "; ".join(dict.fromkeys(diffs))
    return out


def reconcile_symbols(
    states: dict[str, rule.PairState], positions: pd.DataFrame, symbols: set[str], *, where: str, broker: str
) -> dict[str, str]:
    """The broker's positions (``positions`` table: symbol, qty) in ``symbols`` against the signed
    shares the held pair states account for: symbol → what differs. The broker holds one net position
    per symbol for the whole account: ``states`` are EVERY strategy's (and every sector's) held states
    (:func:`read_account_states`), summed per symbol.

    Raises
    ------
    UnheldPositionError
        A position in one of ``symbols`` that no held pair state names (one line, naming the symbol).
    """
    book = {str(r.symbol): float(r.qty) for r in positions.itertuples(index=False)} if not positions.empty else {}
    accounted = signed_shares(states.values())
    held_symbols = {leg for st in states.values() if st.side for leg in (st.y, st.x)}
    out = {}
    for symbol in sorted(symbols):
        qty = book.get(symbol, 0.0)
        if qty and symbol not in held_symbols:
            raise UnheldPositionError(
                f"partition {where}: broker {broker} holds {qty:g} shares of {symbol} but no held pair state names "
                f"{symbol}; close the position or record the pair's state before trading"
            )
        if abs(qty - accounted.get(symbol, 0.0)) > 1e-9:
            out[f"symbol {symbol}"] = f"book {qty:g} shares, held pair states {accounted.get(symbol, 0.0):g}"
    return out


def frozen_pairs(
    mismatches: dict[str, str], states: dict[str, rule.PairState], config: TradingConfig
) -> dict[str, str]:
    """Pairs not to trade because their state and the book disagree: pair → the disagreement. A pair-level
    mismatch (``reconcile``) freezes that pair; a symbol-level one (``reconcile_symbols``) every pair of
    the state or the config that trades the symbol."""
    out: dict[str, str] = {}
    legs = {st.pair_id: (st.y, st.x) for st in states.values()} | {p.pair_id: (p.y, p.x) for p in config.pairs}
    for key, reason in sorted(mismatches.items()):
        if key.startswith("symbol "):
            symbol = key.removeprefix("symbol ")
            for pid, pair_legs in sorted(legs.items()):
                if symbol in pair_legs:
                    out.setdefault(pid, f"{symbol}: {reason}")
        else:
            out.setdefault(key, reason)
    return out


class AccountGate:
    """The ONE set of portfolio risk limits of the account, asked before each entry of a signal run.

    The account is every other strategy's and sector's held positions (``others``: what
    :func:`read_account_states` read at the start of the run) plus this run's own (``positions``: the
    strategy's states of the sector, updated as the run's exits, stops and entries go out). An entry
    is refused when, with its target shares, a leg plus the OTHER strategies' position in its symbol,
    or the whole account's ex-ante daily volatility, would pass the strategy settings'
    ``max_position`` / ``max_portfolio_risk`` (:func:`pairs_assets.quant.paper_book.account_entry_breaches`,
    the paper book's measures; a strategy's own pairs sharing a leg stay bounded leg by leg, as in its
    walk-forward, so that the live path and the walk-forward keep trading alike). The
    session closes behind the volatility are read once per run, at the first entry (no per-bar query).
    """

    def __init__(
        self,
        store: MarketDataStore,
        settings: StrategySettings,
        equity: float,
        *,
        others: dict[str, rule.PairState],
        positions: dict[str, rule.PairState],
        history_source: str,
        as_of: str,
        window: int = pb.DEFAULT_RISK_WINDOW,
    ) -> None:
        self.store, self.settings, self.equity = store, settings, float(equity)
        self.history_source, self.as_of, self.window = history_source, as_of, window
        self.others = signed_shares(others.values())
        self.own = {pid: signed_shares([st]) for pid, st in positions.items()}
        self._closes: pd.DataFrame | None = None
        self._closes_of: set[str] = set()

    def _account(self, without: str) -> dict[str, float]:
        out = dict(self.others)
        for pid, shares in self.own.items():
            if pid != without:
                for symbol, qty in shares.items():
                    out[symbol] = out.get(symbol, 0.0) + qty
        return {symbol: qty for symbol, qty in out.items() if qty}

    def _targets(self, s: sig.PairSignal) -> dict[str, float]:
        out: dict[str, float] = {}
        for symbol, fraction, price in ((s.y, s.position_y, s.price_y), (s.x, s.position_x, s.price_x)):
            out[symbol] = out.get(symbol, 0.0) + float(round((fraction or 0.0) * self.equity / price))
        return out

    def _closes_for(self, symbols: set[str]) -> pd.DataFrame:
        if self._closes is None or not symbols <= self._closes_of:
            self._closes_of |= symbols | set(self.others)
            days = partitions.sessions_in_range(
                pd.Timestamp(self.as_of) - pd.Timedelta(days=2 * self.window + 20), self.as_of
            )[-(self.window + 1) :]
            start, end = partitions.sessions_span_utc(days[0], self.as_of)
            bars = self.store.read_bars(sorted(self._closes_of), start, end, source=self.history_source)
            self._closes = session_closes(bars)
        return self._closes

    def refuse(self, s: sig.PairSignal) -> str | None:
        """Why ``s`` (an entry) may not go out, or None."""
        if s.position_y is None or s.position_x is None:
            return None
        account, entry = self._account(s.pair_id), self._targets(s)
        others = {symbol: qty for symbol, qty in self.others.items() if qty}
        prices = {s.y: s.price_y, s.x: s.price_x}
        try:
            closes = self._closes_for(set(account) | set(entry))
            lines = pb.account_entry_breaches(
                account,
                entry,
                prices,
                self.equity,
                max_position=self.settings.max_position,
                max_portfolio_risk=self.settings.max_portfolio_risk,
                closes=closes,
                window=self.window,
                others=others,
            )
        except pb.BookInputError as exc:
            return f"the account's risk cannot be measured: {exc}"
        return "; ".join(lines) or None

    def accept(self, s: sig.PairSignal) -> None:
        """``s`` went out: its target shares are the pair's in the account."""
        self.own[s.pair_id] = self._targets(s)

    def close(self, pair_id: str) -> None:
        """The pair's position was closed (an exit or a stop)."""
        self.own[pair_id] = {}


def net_order_signal(before: rule.PairState | None, final: sig.PairSignal) -> sig.PairSignal | None:
    """The signal whose orders move a pair from its state before a run to its state after the run's
    last bar (None: no change). Several bars applied in one run net out: an entry and its exit
    between two runs send nothing; an entry still held sends the entry at the last bar's prices."""
    after = final.state
    held_before = before is not None and before.side != 0
    if after.side:
        if held_before and before.side == after.side and before.entry_bar == after.entry_bar:
            return None  # the same position
        if final.action in sig.ENTRIES:
            return final
        action = sig.LONG_SPREAD if after.side == 1 else sig.SHORT_SPREAD
        return dataclasses.replace(
            final,
            action=action,
            position_y=after.weight_y,
            position_x=after.weight_x,
            gross_fraction=abs(after.weight_y) + abs(after.weight_x),
        )
    if not held_before:
        return None
    if final.action in (sig.EXIT, sig.STOP):
        return final
    return dataclasses.replace(final, action=sig.EXIT, position_y=0.0, position_x=0.0, gross_fraction=0.0)


# --- the asset -----------------------------------------------------------------------------------


def compute_sector_signals(
    *,
    config: TradingConfig,
    store: MarketDataStore,
    history_source: str,
    strategy: StrategySettings,
    model_registry: Any,
    cutoff: pd.Timestamp,
    history_sessions: int,
    drift_window: int,
    drift_tolerance: float,
    history_start: str | pd.Timestamp | None = None,
    states: dict[str, rule.PairState] | None = None,
    on_drop: str = rule.DEFAULT_ON_DROP,
    max_holding: int = rule.DEFAULT_MAX_HOLDING,
    rejected_bars: dict[str, list[str]] | None = None,
    live_source: str | None = None,
    ignored_bars: Counter | None = None,
) -> tuple[list[sig.PairSignal], dict[str, str], dict[str, str]]:
    """Signals of one parsed trading config; (signals in bar order per pair, skipped pairs → reason,
    model failures → reason).

    The spread history is the ``history_sessions`` sessions ending at the as-of session, none before
    ``history_start`` (when given). Each signal applies the trading rule to the pair's state in
    ``states`` (flat when absent) and carries the new state; pairs held in ``states`` but missing
    from the config get signals with their last config's terms (``on_drop``). Each pair's new bars in
    (as-of close, ``cutoff``] — after its state's last bar — are applied in order, one signal each
    (:func:`pair_bar_path`); the session's closes and the GRU probability are the same for all of
    them. ``max_holding`` counts sessions from the config's effective session.

    A pair the config holds but a signal cannot use (a null GARCH parameter, a non-positive
    ``spread_std``, ...) is skipped with the reason; the other pairs still get their signals.

    A bar failing the jump rule against its symbol's last close (:func:`screen_session_bars`) is
    dropped before anything is priced; its pairs' signals are flagged ``rejected_bar:<symbol>`` and
    ``rejected_bars`` (when given) receives symbol → reasons.
    """
    as_of = config.as_of_session
    params, skipped = [], {}
    # one position per unordered pair (quant.rule): a listed ordering whose legs are held in the other
    # ordering is that position's drop (on_drop), a flat state takes the listed ordering
    listed, states = rule.align_orderings({pair.pair_id: pair for pair in config.pairs}, states or {})
    n_listed = 0
    for pair in config.pairs:
        try:
            pair_params = sig.PairParams.from_pair_config(pair)
        except sig.SignalInputError as exc:
            skipped[pair.pair_id] = str(exc)
            continue
        n_listed += 1  # sizing counts the config's pairs, as the config was written
        if pair.pair_id in listed:
            params.append(pair_params)
        else:
            held = next(
                st.pair_id for st in states.values() if rule.pair_key(st.y, st.x) == rule.pair_key(pair.y, pair.x)
            )
            skipped[pair.pair_id] = (
                f"its legs are held as {held} (one position per unordered pair): it trades once {held} is flat"
            )
    for pair_id, state in sorted(states.items()):  # held, dropped from today's config: the last config's terms
        if state.side and pair_id not in listed and state.terms is not None:
            try:
                params.append(sig.PairParams.from_pair_config(state.terms))
            except sig.SignalInputError as exc:
                skipped[pair_id] = str(exc)
    if not params:
        return [], skipped, {}
    session = config.effective_session
    ordinal = session_ordinal(session)
    symbols = sorted({s for p in params for s in (p.y, p.x)})
    earliest = pd.Timestamp(as_of) - pd.Timedelta(days=2 * history_sessions + 10)
    if history_start is not None:
        earliest = max(pd.Timestamp(history_start), earliest)
    sessions = partitions.sessions_in_range(earliest, as_of)[-history_sessions:]
    start, as_of_close = partitions.sessions_span_utc(sessions[0], as_of)
    history = session_closes(store.read_bars(symbols, start, as_of_close, source=history_source))
    # outside replay mode only the live source's bars are traded on (a recycler's replayed bars never)
    session_bars = read_session_bars(store, symbols, as_of_close, cutoff, live_source=live_source, ignored=ignored_bars)
    # a bar failing the jump rule against its last close (a replayed or absurd print) is never applied
    session_bars, rejected = screen_session_bars(session_bars, history, strategy)
    if rejected_bars is not None:
        rejected_bars.update(rejected)
    latest = session_bars.drop_duplicates("symbol", keep="last").set_index("symbol")
    inputs, more_skipped = build_pair_inputs(params, history, latest, as_of_close)
    skipped.update(more_skipped)
    by_symbol = {symbol: frame for symbol, frame in session_bars.groupby("symbol")} if not session_bars.empty else {}
    probabilities, gating_flags, failures = gru_probabilities(
        [pair for pair in inputs if pair.params.pair_id in listed],
        model_registry,
        strategy.gru_seq_len,
        gate=config.gru_gate,
    )
    limits = sig.RiskLimits(strategy.max_portfolio_risk, strategy.max_position, strategy.target_daily_vol).tighter(
        config.risk
    )
    out = []
    for first in inputs:
        pid = first.params.pair_id
        state = states.get(pid)
        path = pair_bar_path(
            first.params, first.history, by_symbol, as_of_close, None if state is None else state.last_bar
        )
        refused = [reason for leg in (first.params.y, first.params.x) for reason in rejected.get(leg, [])]
        if refused:
            if "no_bar_after_as_of" in path[0].flags and state is not None and state.last_bar is not None:
                skipped[pid] = f"no order: every new bar rejected: {refused[0]}"  # nothing to apply, state kept
                continue
            marks = [f"rejected_bar:{leg}" for leg in (first.params.y, first.params.x) if leg in rejected]
            path = [dataclasses.replace(pair, flags=[*pair.flags, *marks]) for pair in path]
        try:
            for pair in path:  # each new bar in order, the state carried from one to the next
                signal = sig.compute_pair_signal(
                    pair,
                    probabilities.get(pid),
                    limits,
                    n_pairs=n_listed,
                    drift_window=drift_window,
                    drift_tolerance=drift_tolerance,
                    gating_flags=gating_flags.get(pid, ()),
                    state=state,
                    listed=pid in listed,
                    terms=listed.get(pid),
                    session=session,
                    ordinal=ordinal,
                    on_drop=on_drop,
                    max_holding=max_holding,
                )
                out.append(signal)
                state = signal.state
        except sig.SignalInputError as exc:
            skipped[pid] = str(exc)
    return out, skipped, failures


def _all_bars_rejected(signal: sig.PairSignal) -> bool:
    return "no_bar_after_as_of" in signal.flags and any(f.startswith("rejected_bar:") for f in signal.flags)


def trading_signals_asset(
    daily: dg.MultiPartitionsDefinition, strategy: StrategySettings | None = None
) -> dg.AssetsDefinition:
    """The asset on ``daily``'s partitions (it reads the same-partition trading config only)."""
    return dg.asset(
        name=ASSET_NAME,
        partitions_def=daily,
        deps=[dg.AssetDep("trading_config", partition_mapping=partitions.same_partition_mapping())],
        group_name=GROUP,
        kinds={"sql"},
        description="Per pair of the sector's trading config: spread, GARCH z-score, GRU reversion probability, "
        "entry/exit/stop decision and confidence, volatility-targeted size, correlation drift — for the session "
        "after the partition's as-of session, from the latest bars; rows in the store's trading_signals table.",
    )(trading_signals)


def trading_signals(
    context: dg.AssetExecutionContext,
    config: SignalRunConfig,
    store: MarketDataStore,
    bar_source: BarSource,
    strategy: StrategySettings,
    model_registry: dg.ResourceParam[Any],
    broker: BrokerResource,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    key = context.partition_key
    as_of, sector = split_partition_key(key)
    name = config.strategy
    stored = store.latest_trading_config_record(sector, on_or_before=as_of, strategy=name)
    if stored is None or stored.as_of_session != as_of:
        found = f" (latest on or before: {stored.as_of_session})" if stored else ""
        asset = "trading_config" if name == PRIMARY_STRATEGY else f"{name}/trading_config"
        raise MissingTradingConfigError(
            f"strategy {name}, partition {as_of}|{sector}: no trading config as of {as_of} in the store{found}; "
            f"materialize {asset} for {as_of}|{sector} first"
        )
    # an unreadable document (truncated, empty, not an object), an unknown schema_version or a malformed
    # field fails the run here in one line naming the partition, the file and what is wrong
    trading_config = TradingConfig.parse_stored(stored.text, partition=f"{as_of}|{sector}", path=stored.path)
    requested = to_utc(config.bar_cutoff) if config.bar_cutoff else pd.Timestamp.now(tz="UTC")
    # point in time: never a bar after the effective session's close (a past partition stays in its session)
    cutoff = min(requested, partitions.session_close_utc(trading_config.effective_session))
    replay = signal_replay_from_env() if config.replay is None else config.replay
    live_source = config.live_source or live_source_from_env()
    # the mode in the run's tags whatever launched it (the sensor's runs carry them already)
    context.instance.add_run_tags(
        context.run_id,
        {"pairs/replay": str(replay).lower(), "pairs/live_source": live_source, "pairs/strategy": name},
    )
    if replay:
        context.log.warning(
            f"replay mode: bars of every source are traded on, rows flagged 'replay' (live source: {live_source})"
        )
    states = read_pair_states(store, sector, name)
    # every strategy's held positions in every sector: the account the broker holds, one net position per symbol
    account_states = read_account_states(store)
    own = {f"{name}/{sector}/{pid}" for pid in states}
    others = {k: st for k, st in account_states.items() if k not in own}
    # the state's shares against the book this broker recorded: a mismatch is reported, never overwritten
    mismatches = reconcile(states, broker.pair_positions(store, sorted(states), name)) if states else {}
    symbols_in_play = {leg for p in trading_config.pairs for leg in (p.y, p.x)} | {
        leg for st in states.values() for leg in (st.y, st.x)
    }
    # the account as the broker reports it now (Alpaca: asked, not the store's mirror — after a restart or
    # on a new machine the state rebuilt from the store is checked against what the account holds), against
    # the SUM of every strategy's held states per symbol
    mismatches.update(
        reconcile_symbols(
            {**others, **{f"{name}/{sector}/{pid}": st for pid, st in states.items()}},
            broker.broker_positions(store),
            symbols_in_play,
            where=f"{as_of}|{sector}" + ("" if name == PRIMARY_STRATEGY else f" (strategy {name})"),
            broker=broker.name,
        )
    )
    for pair_id, reason in sorted(mismatches.items()):
        context.log.warning(f"pair {pair_id}: state and book disagree: {reason}")
    # against a real account (alpaca-paper/-live) a pair whose state and book disagree is frozen: no order,
    # its state kept as it was, until a person resolves it (an order computed from a wrong state would
    # compound the difference). The dry-run book is the store's own record: reported only.
    frozen = frozen_pairs(mismatches, states, trading_config) if broker.mode != "dry-run" else {}
    rejected_bars: dict[str, list[str]] = {}
    ignored_bars: Counter = Counter()
    signals, skipped, failures = compute_sector_signals(
        config=trading_config,
        store=store,
        history_source=bar_source.source_name,
        strategy=strategy,
        model_registry=model_registry,
        cutoff=cutoff,
        history_sessions=config.history_sessions,
        drift_window=config.drift_window,
        drift_tolerance=config.drift_tolerance,
        history_start=partitions.history_start_of(context.assets_def.partitions_def),
        states=states,
        on_drop=config.on_drop,
        max_holding=config.max_holding,
        rejected_bars=rejected_bars,
        live_source=None if replay else live_source,
        ignored_bars=ignored_bars,
    )
    ignored_line = ""
    if ignored_bars:
        ignored_line = (
            f"{sum(ignored_bars.values())} bar(s) ignored, not from the live source {live_source!r}: "
            + ", ".join(f"{n} of {source}" for source, n in sorted(ignored_bars.items()))
            + f" (replay mode is off: set {ENV_SIGNAL_REPLAY}=1 to trade on replayed bars)"
        )
        context.log.warning(ignored_line)
    if replay:  # every row says it was computed on replayed bars
        signals = [dataclasses.replace(s, flags=(*s.flags, "replay")) for s in signals]
    for _symbol, reasons in sorted(rejected_bars.items()):
        for reason in reasons:
            context.log.warning(f"bar rejected, never traded on: {reason}")
    repeated = [s.pair_id for s in signals if "bar_already_applied" in s.flags]
    signals = [s for s in signals if "bar_already_applied" not in s.flags]  # applied before: nothing changes
    # a pair whose every new bar failed the jump rule: its row says hold (and why), no order follows
    signals = [
        dataclasses.replace(s, action=sig.HOLD, confidence=0.0, position_y=None, position_x=None, gross_fraction=None)
        if _all_bars_rejected(s)
        else s
        for s in signals
    ]
    for pair_id, reason in sorted(skipped.items()):
        context.log.warning(f"pair {pair_id} skipped: {reason}")
    for model, reason in sorted(failures.items()):
        context.log.warning(f"model {model} unavailable, its pairs are not GRU-gated: {reason}")
    rows = []
    for s in signals:
        row = s.as_row()
        row.update(
            bar_timestamp=to_naive_utc(s.bar_timestamp),
            sector=sector,
            strategy=name,
            as_of_session=as_of,
            run_id=context.run_id,
        )
        rows.append(row)

    orders: list[dict] = []
    not_traded: dict[str, str] = {}
    new_states = {s.pair_id: s.state for s in signals}  # each pair's state after its last bar
    last_signal = {s.pair_id: s for s in signals}
    actionable = []  # per pair, the order that moves the book from the state before the run to the state after
    # the paper book's exposure check failed last time it ran: no position is opened (exits still go out)
    blocked = exposure_block(context.instance) if config.execute else None
    if blocked:
        context.log.error(f"entries refused: {blocked}")
    for pid, final in sorted(last_signal.items()):
        if pid in frozen:
            not_traded[pid] = f"no order: state and book disagree ({frozen[pid]}); resolve it, the state is kept"
            if pid in states:
                new_states[pid] = states[pid]
            else:
                new_states.pop(pid, None)
            continue
        if _all_bars_rejected(final):
            # every new bar of the pair failed the jump rule: no order, the state as it was
            not_traded[pid] = "no order: every new bar rejected by the jump rule"
            if pid in states:
                new_states[pid] = states[pid]
            else:
                new_states.pop(pid, None)
            continue
        order = net_order_signal(states.get(pid), final)
        if order is None:
            continue
        refused = None
        if order.action in sig.ENTRIES and order.correlation_drift and not config.trade_on_drift:
            refused = "correlation drift"
        elif order.action in sig.ENTRIES and blocked:
            refused = blocked
        if refused:
            not_traded[pid] = f"entry not traded: {refused}"
            # the entry did not happen: flat (after any exit), the bars applied
            new_states[pid] = rule.PairState(
                pid, final.y, final.x, terms=final.state.terms, last_bar=final.state.last_bar
            )
            previous = states.get(pid)
            if previous is None or not previous.side:
                continue
            order = dataclasses.replace(order, action=sig.EXIT, position_y=0.0, position_x=0.0, gross_fraction=0.0)
        actionable.append(order)
    pending = PendingWrites()
    if config.execute and actionable:
        equity = broker.account_equity()
        held = broker.pair_positions(store, [s.pair_id for s in actionable], name)
        gate = AccountGate(
            store,
            strategy,
            equity,
            others=others,
            positions={**states, **new_states},
            history_source=bar_source.source_name,
            as_of=as_of,
        )
        # exits and stops first (they only free the account's limits), then entries in pair order
        for s in sorted(actionable, key=lambda s: (s.action in sig.ENTRIES, s.pair_id)):
            if s.action in sig.ENTRIES:
                refused = gate.refuse(s)
                if refused:
                    # ONE set of limits for the account: another strategy's (or sector's) positions count
                    not_traded[s.pair_id] = f"entry not traded: account limit: {refused}"
                    context.log.warning(f"pair {s.pair_id}: entry not traded: account limit: {refused}")
                    final = last_signal[s.pair_id]
                    new_states[s.pair_id] = rule.PairState(
                        s.pair_id, final.y, final.x, terms=final.state.terms, last_bar=final.state.last_bar
                    )
                    previous = states.get(s.pair_id)
                    if previous is None or not previous.side:
                        continue
                    s = dataclasses.replace(  # noqa: PLW2901 — the held side still closes
                        s, action=sig.EXIT, position_y=0.0, position_x=0.0, gross_fraction=0.0
                    )
            intents = sig.order_intents(s, equity, held.get(s.pair_id, {}))
            if s.action in sig.ENTRIES:
                gate.accept(s)
            else:
                gate.close(s.pair_id)
            if not intents:
                continue
            if s.action in sig.ENTRIES:
                shares = {i.leg: abs(i.target_qty) for i in intents}
                new_states[s.pair_id] = dataclasses.replace(
                    new_states[s.pair_id], shares_y=shares.get("y", 0.0), shares_x=shares.get("x", 0.0)
                )
            extra = {
                s.pair_id: {
                    "action": s.action,
                    "zscore": round(s.zscore, 6),
                    "confidence": round(s.confidence, 6),
                    "sector": sector,
                    "on_drop": config.on_drop,
                    "max_holding": config.max_holding,
                }
            }
            orders.extend(broker.submit(store, intents, s.bar_timestamp, extra, pending=pending, strategy=name))
    # the signal rows, the new states, the orders and the positions they leave in ONE transaction: all of
    # a run's bookkeeping or none of it; a re-run of the same bars finds its bars applied (no row, no
    # order) and every client_order_id recorded (never sent twice)
    store.upsert_tables(
        [
            (trading_signals_table, rows),
            (
                pair_states_table,
                [
                    state_row(st, sector=sector, as_of=as_of, run_id=context.run_id, strategy=name)
                    for _, st in sorted(new_states.items())
                ],
            ),
            *pending.batches(),
        ]
    )

    frame = pd.DataFrame(
        [
            {
                "pair_id": s.pair_id,
                "action": s.action,
                "z": s.zscore,
                "p_gru": np.nan if s.gru_probability is None else s.gru_probability,
                "confidence": s.confidence,
                "pos_y": np.nan if s.position_y is None else s.position_y,
                "pos_x": np.nan if s.position_x is None else s.position_x,
                "drift": s.correlation_drift,
                "bar": s.bar_timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                "flags": ",".join(s.flags) or "—",
            }
            for s in sorted(signals, key=lambda s: (s.action == sig.HOLD, -abs(s.zscore), s.pair_id))
        ]
    )
    actions = Counter(s.action for s in signals)
    bar_times = [s.bar_timestamp for s in signals]
    return dg.MaterializeResult(
        metadata={
            "strategy": name,
            "as_of_session": as_of,
            "effective_session": trading_config.effective_session,
            "bar_cutoff": cutoff.isoformat(),
            "bars_already_applied": len(repeated),
            "held_pairs": sum(1 for st in new_states.values() if st.side)
            + sum(1 for pid, st in states.items() if st.side and pid not in new_states),
            "latest_bar": max(bar_times).isoformat() if bar_times else "",
            "pairs_in_config": len(trading_config.pairs),
            "signals": len(signals),
            "pairs_signalled": len({s.pair_id for s in signals}),
            "actions": dg.MetadataValue.json({a: actions.get(a, 0) for a in sig.ACTIONS}),
            "gru_gated": len({s.pair_id for s in signals if s.gru_probability is not None}),
            "flagged": sum(1 for s in signals if s.flags),
            "correlation_drift": sum(1 for s in signals if s.correlation_drift),
            "skipped_pairs": reasons_table(skipped),
            "model_failures": reasons_table(failures),
            "signals_table": markdown_table(frame, n=25),
            "broker": broker.name,
            "orders": len(orders),
            "orders_table": markdown_table(
                pd.DataFrame(orders, columns=["client_order_id", "symbol", "side", "qty", "fill_price", "status"])
                if orders
                else pd.DataFrame(),
                n=25,
            ),
            "not_traded": reasons_table(not_traded),
            "replay": replay,
            "live_source": live_source,
            "ignored_bars": ignored_line or "none",
            "rejected_bars": reasons_table({symbol: "; ".join(reasons) for symbol, reasons in rejected_bars.items()}),
            "state_vs_book": reasons_table(mismatches),
            "entries_blocked": blocked or "",
            "elapsed_seconds": round(time.perf_counter() - started, 3),
        }
    )
