"""What the market is, in pure code: its calendar, its symbols, and Alpaca's wire format for its bars.

Below the resources, the live path and the Dagster layer, so that each of them may import it and it
imports none of them (no Dagster, no store, no settings): ``calendar`` (NYSE sessions),
``symbology`` (a valid symbol and timeframe), ``wire`` (the Alpaca stream and historical format).
"""
