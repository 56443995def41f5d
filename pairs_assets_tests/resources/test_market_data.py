import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from pairs_assets.errors import BadBarsError
from resources.bars import conform_bars
from resources.market_data import MarketDataStore, bars_table


def _bars(source="test", close=100.0):
    ts = pd.date_range("2022-12-27 21:00", periods=3, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {"symbol": ["AAA"] * 3 + ["BBB"] * 3, "timestamp": list(ts) * 2, "close": [close, close + 1, close + 2] * 2}
    )
    frame["volume"] = [10.0, np.nan, 30.0] * 2
    return conform_bars(frame, source)


def _roundtrip(url):
    store = MarketDataStore(database_url=url)
    bars = _bars()
    assert store.upsert_bars(bars, context="test") == 6
    assert store.upsert_bars(bars, context="test") == 6  # idempotent: same rows again
    read = store.read_bars(["AAA", "BBB"], pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2023-01-01", tz="UTC"))
    assert len(read) == 6
    pd.testing.assert_frame_equal(
        read.reset_index(drop=True), bars.sort_values(["symbol", "timestamp"]).reset_index(drop=True)
    )
    assert read["open"].isna().all(), "unknown fields stay null"
    # an upsert replaces values of the same key
    store.upsert_bars(_bars(close=200.0), context="test")
    read = store.read_bars(["AAA"], pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2023-01-01", tz="UTC"))
    assert read["close"].tolist() == [200.0, 201.0, 202.0]
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(bars_table)).scalar() == 6
    # the end bound is inclusive and nothing later leaks in
    read = store.read_bars(["AAA"], pd.Timestamp("2022-01-01", tz="UTC"), pd.Timestamp("2022-12-28 21:00", tz="UTC"))
    assert len(read) == 2
    counts = store.bar_counts()
    assert counts.set_index("symbol")["bars"].to_dict() == {"AAA": 3, "BBB": 3}


def test_store_roundtrip_sqlite(sqlite_url):
    _roundtrip(sqlite_url)


@pytest.mark.postgres
def test_store_roundtrip_postgres(postgres_url):
    _roundtrip(postgres_url)


def test_bad_bars_are_rejected_and_nothing_is_written(sqlite_url):
    store = MarketDataStore(database_url=sqlite_url)
    bars = _bars()
    bars.loc[4, "close"] = -1.0
    with pytest.raises(BadBarsError, match=r"symbol BBB has close=-1.0 at 2022-12-28T21:00:00\+00:00"):
        store.upsert_bars(bars, context="partition 2022-12-28|x")
    assert store.bar_counts().empty
    dup = pd.concat([_bars(), _bars().iloc[[0]]])
    with pytest.raises(BadBarsError, match="duplicated bar for symbol AAA at 2022-12-27"):
        store.upsert_bars(dup, context="x")
    nan = _bars()
    nan.loc[0, "close"] = np.inf
    with pytest.raises(BadBarsError, match="symbol AAA has close=inf"):
        store.upsert_bars(nan, context="x")
