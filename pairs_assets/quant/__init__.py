"""Pure numerics for pairs trading: prices, correlation, cointegration, GARCH, backtest, scoring.

Nothing here imports dagster or ``resources``; every function works on plain arrays and frames.
"""
