import pandas as pd
import pytest

from pairs_assets.errors import BarsFileError
from resources.bar_sources import EmbeddedBarSource, FileBarSource

UTC = "UTC"


def test_embedded_source_stamps_closes_at_the_session_close_and_leaves_other_fields_null():
    bars = EmbeddedBarSource().load_bars(
        ["AAPL", "RRC"], pd.Timestamp("2022-12-27", tz=UTC), pd.Timestamp("2022-12-29", tz=UTC)
    )
    assert sorted(bars["symbol"]) == ["AAPL", "AAPL", "RRC", "RRC"]
    assert set(bars["timestamp"]) == {
        pd.Timestamp("2022-12-27 21:00", tz=UTC),
        pd.Timestamp("2022-12-28 21:00", tz=UTC),
    }
    row = bars[(bars["symbol"] == "AAPL") & (bars["timestamp"] == pd.Timestamp("2022-12-28 21:00", tz=UTC))].iloc[0]
    assert row["close"] == pytest.approx(125.674)
    assert bars[["open", "high", "low", "volume", "trade_count", "vwap"]].isna().all().all()
    assert (bars["source"] == "embedded:skfolio-sp500").all()


def test_user_csv_daily_and_intraday(tmp_path):
    daily = tmp_path / "daily.csv"
    pd.DataFrame(
        {
            "symbol": ["AAA", "AAA"],
            "timestamp": ["2022-12-27", "2022-12-28"],
            "open": 1,
            "high": 2,
            "low": 0.5,
            "close": [1.5, 1.6],
            "volume": 100,
        }
    ).to_csv(daily, index=False)
    bars = FileBarSource(path=str(daily)).load_bars(
        ["AAA"], pd.Timestamp("2022-12-01", tz=UTC), pd.Timestamp("2023-01-01", tz=UTC)
    )
    assert bars["timestamp"].tolist() == [
        pd.Timestamp("2022-12-27 21:00", tz=UTC),
        pd.Timestamp("2022-12-28 21:00", tz=UTC),
    ]
    assert bars["source"].iloc[0] == "file:daily.csv"
    intraday = tmp_path / "intraday.parquet"
    pd.DataFrame(
        {
            "symbol": ["AAA"],
            "timestamp": [pd.Timestamp("2022-12-28 10:05", tz="America/New_York")],
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 5.0,
        }
    ).to_parquet(intraday)
    bars = FileBarSource(path=str(intraday)).load_bars(
        ["AAA"], pd.Timestamp("2022-12-01", tz=UTC), pd.Timestamp("2023-01-01", tz=UTC)
    )
    assert bars["timestamp"].iloc[0] == pd.Timestamp("2022-12-28 15:05", tz=UTC)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("symbol,timestamp,close\nAAA,2022-12-28,1\n", r"lacks required column\(s\) open, high, low, volume"),
        (
            "symbol,timestamp,open,high,low,close,volume\nAAA,notadate,1,1,1,1,1\n",
            "symbol AAA has an unparseable timestamp 'notadate'",
        ),
        (
            "symbol,timestamp,open,high,low,close,volume\nAAA,2022-12-28,1,1,1,abc,1\n",
            "symbol AAA has a non-numeric close 'abc'",
        ),
        (
            "symbol,timestamp,open,high,low,close,volume\nAAA,2022-12-25,1,1,1,1,1\n",
            "2022-12-25, which is not an NYSE session",
        ),
    ],
)
def test_malformed_bars_file_names_the_field(tmp_path, content, expected):
    path = tmp_path / "bars.csv"
    path.write_text(content)
    with pytest.raises(BarsFileError, match=expected):
        FileBarSource(path=str(path)).load_bars(
            ["AAA"], pd.Timestamp("2022-01-01", tz=UTC), pd.Timestamp("2023-01-01", tz=UTC)
        )


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(BarsFileError, match="does not exist"):
        FileBarSource(path=str(tmp_path / "none.csv")).load_bars(
            ["A"], pd.Timestamp(0, tz=UTC), pd.Timestamp(1, tz=UTC)
        )
    odd = tmp_path / "bars.xlsx"
    odd.write_text("x")
    with pytest.raises(BarsFileError, match="unsupported extension"):
        FileBarSource(path=str(odd)).load_bars(["A"], pd.Timestamp(0, tz=UTC), pd.Timestamp(1, tz=UTC))
