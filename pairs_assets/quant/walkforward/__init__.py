"""Walk-forward evaluation of pairs strategies, pure numerics (no Dagster).

A strategy — the platform's daily configs replayed session by session, or the classical
Engle-Granger baseline (:mod:`.baseline`) — produces a *trades* frame (one row per round trip, see
:data:`.execution.TRADE_COLUMNS`); :func:`.execution.execute` turns it into daily P&L under one
cost model and execution lag; :mod:`.metrics` summarises the result (Sharpe, drawdown, deflated
Sharpe ratio, by sub-period).
"""
