"""PAIRS_BAR_SOURCE=alpaca: Alpaca's keys go to Alpaca's own hosts over TLS only (issue 9 item 1's class)."""

import dagster as dg

from pairs_assets.definitions import bar_source_for
from pairs_assets.settings import Paths


def _source(monkeypatch, url, recycler=False):
    monkeypatch.setenv("ALPACA_API_KEY", "REAL-KEY")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "REAL-SECRET")
    if recycler:
        monkeypatch.setenv("PAIRS_RECYCLER_KEY", "rk")
        monkeypatch.setenv("PAIRS_RECYCLER_SECRET", "rs")
    else:
        monkeypatch.delenv("PAIRS_RECYCLER_KEY", raising=False)
        monkeypatch.delenv("PAIRS_RECYCLER_SECRET", raising=False)
    env = {"PAIRS_BAR_SOURCE": "alpaca", **({"PAIRS_ALPACA_DATA_URL": url} if url else {})}
    return bar_source_for(Paths.from_env(env))


def _names(source):
    return source.api_key, source.secret_key


def test_alpaca_keys_only_for_alpaca_hosts_over_tls(monkeypatch):
    for url in (None, "https://data.alpaca.markets", "https://data.sandbox.alpaca.markets"):
        key, secret = _names(_source(monkeypatch, url))
        assert key == dg.EnvVar("ALPACA_API_KEY") and secret == dg.EnvVar("ALPACA_SECRET_KEY")
    for url in ("http://127.0.0.1:8765", "http://data.alpaca.markets", "https://alpaca.markets.evil.example"):
        key, secret = _names(_source(monkeypatch, url))
        assert "REAL" not in str(key) + str(secret) and key != dg.EnvVar("ALPACA_API_KEY")
        key, secret = _names(_source(monkeypatch, url, recycler=True))
        assert key == dg.EnvVar("PAIRS_RECYCLER_KEY") and secret == dg.EnvVar("PAIRS_RECYCLER_SECRET")
