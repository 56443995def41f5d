"""The live path: the data recycler (Alpaca-compatible replay server), stream ingestion, live symbols.

Modules: ``recycler`` (the server, a package: data, protocol, history endpoint, runner), ``stream``
(ingestion into the market data store), ``symbols`` (the live symbol list and proxies), ``commands``
(the click commands ``pairs recycler``, ``pairs stream`` and ``pairs symbols``). Alpaca's wire format
and the symbol rule live below, in :mod:`pairs_assets.market`, where the resources may use them too.
"""
