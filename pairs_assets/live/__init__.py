"""The live path: the data recycler (Alpaca-compatible replay server), stream ingestion, live symbols.

Modules: ``wire`` (Alpaca's wire format), ``recycler`` (the server), ``stream`` (ingestion into the
market data store), ``symbols`` (the live symbol list and proxies), ``commands`` (the click commands
``pairs recycler``, ``pairs stream`` and ``pairs symbols``).
"""
