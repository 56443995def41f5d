"""quant.walkforward.bars: the bar panel and the per-session aggregation of per-bar execution."""

import pandas as pd
import pytest

from pairs_assets.quant.walkforward.bars import bar_panel, bars_of_range, daily_from_bars, is_intraday


def _bars():
    rows = [
        ("A", "2022-12-21 15:30", 10.0, "2022-12-21"),
        ("B", "2022-12-21 15:30", 20.0, "2022-12-21"),
        ("A", "2022-12-21 21:00", 11.0, "2022-12-21"),  # B has no bar here: its latest price carries
        ("B", "2022-12-21 21:00", 21.0, "2022-12-21"),
        ("A", "2022-12-22 15:30", 12.0, "2022-12-22"),
    ]
    frame = pd.DataFrame(rows, columns=["symbol", "timestamp", "close", "session"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.tz_localize("UTC")
    frame["session"] = pd.to_datetime(frame["session"])
    return frame


def test_bar_panel_forward_fills_and_keeps_each_bars_session():
    bars = _bars()
    assert is_intraday(bars) and not is_intraday(bars.drop_duplicates(["symbol", "session"]))
    panel = bar_panel(bars, ["A", "B"])
    assert panel.closes.index.tz is None and list(panel.closes.columns) == ["A", "B"]
    assert panel.closes.loc[pd.Timestamp("2022-12-22 15:30"), "B"] == 21.0
    assert list(panel.sessions) == [pd.Timestamp("2022-12-21")] * 2 + [pd.Timestamp("2022-12-22")]
    assert len(bar_panel(bars, ["A", "B"]).fingerprint()) == 16
    assert bar_panel(bars.assign(close=bars["close"] + 1), ["A", "B"]).fingerprint() != panel.fingerprint()
    with pytest.raises(ValueError, match="^intraday bars: no bar of C$"):
        bar_panel(bars, ["A", "C"])
    with pytest.raises(ValueError, match="^sector s: no intraday bar in session 2022-12-23 of the range$"):
        bars_of_range(panel, pd.DatetimeIndex(["2022-12-21", "2022-12-22", "2022-12-23"]), "s")


def test_daily_from_bars_sums_flows_and_keeps_the_close_position():
    times = pd.DatetimeIndex(["2022-12-21 15:30", "2022-12-21 21:00", "2022-12-22 15:30", "2022-12-22 21:00"])
    daily = pd.DataFrame(
        {
            "pnl": [1.0, 2.0, 3.0, -1.0],
            "gross_pnl": [1.5, 2.0, 3.0, -1.0],
            "cost": [0.5, 0.0, 0.0, 0.0],
            "turnover": [0.2, 0.0, 0.1, 0.1],
            "gross_exposure": [0.2, 0.0, 0.2, 0.0],
            "n_positions": [1, 0, 1, 0],
        },
        index=times,
    )
    sessions = pd.DatetimeIndex(["2022-12-21", "2022-12-22", "2022-12-23"])
    out = daily_from_bars(daily, [t.normalize() for t in times], sessions)
    assert list(out.index) == list(sessions) and list(out.columns) == list(daily.columns)
    assert list(out["pnl"]) == [3.0, 2.0, 0.0] and list(out["cost"]) == [0.5, 0.0, 0.0]
    assert list(out["turnover"]) == pytest.approx([0.2, 0.2, 0.0])
    # what is held over the close: flat at both closes although positions were open during the sessions
    assert list(out["gross_exposure"]) == [0.0, 0.0, 0.0] and list(out["n_positions"]) == [0, 0, 0]
    assert out["n_positions"].dtype == daily["n_positions"].dtype
