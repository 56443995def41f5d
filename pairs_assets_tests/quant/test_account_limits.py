"""One set of risk limits for the account (issue 19): every strategy's positions count."""

import numpy as np
import pandas as pd
import pytest

from pairs_assets.assets.paper_book import book_pair_id, fills_from_orders, split_book_pair_id, strategy_rules
from pairs_assets.quant import paper_book as pb

EQUITY = 100_000.0


def test_an_entry_is_refused_when_the_account_position_in_a_symbol_passes_max_position():
    prices = {"KO": 60.0, "PEP": 180.0}
    entry = {"KO": -100.0, "PEP": 30.0}  # 6 % and 5.4 % of equity: within 10 % on its own
    assert pb.account_entry_breaches({}, entry, prices, EQUITY, max_position=0.10, max_portfolio_risk=0.05) == []
    held = {"KO": -80.0}  # another strategy's short KO: 4.8 %
    (line,) = pb.account_entry_breaches(held, entry, prices, EQUITY, max_position=0.10, max_portfolio_risk=0.05)
    assert line == "KO: other strategies -80 + entry -100 shares = 10.80% of equity > max_position 10%"
    # the same KO held by the entering strategy's own other pair: bounded leg by leg, as its walk-forward
    own = pb.account_entry_breaches(held, entry, prices, EQUITY, max_position=0.10, max_portfolio_risk=0.05, others={})
    assert own == []
    # an entry that reduces the account's position in the symbol is never refused
    assert (
        pb.account_entry_breaches({"KO": 200.0}, entry, prices, EQUITY, max_position=0.1, max_portfolio_risk=0.05) == []
    )
    # whole shares: half a share of rounding past the limit is not a breach
    assert pb.account_entry_breaches({}, {"KO": -167.0}, prices, EQUITY, max_position=0.1, max_portfolio_risk=1.0) == []


def test_an_entry_is_refused_when_the_account_volatility_passes_max_portfolio_risk():
    rng = np.random.default_rng(0)
    common = np.cumsum(rng.normal(0, 2.0, size=80))  # about $2 a day per share, the two symbols moving together
    closes = pd.DataFrame({"AAA": 100 + common, "BBB": 120 + common + rng.normal(0, 0.1, size=80)})
    prices = {"AAA": float(closes["AAA"].iloc[-1]), "BBB": float(closes["BBB"].iloc[-1])}
    entry = {"AAA": 1000.0}  # about $2,000 a day: 2 % of equity
    limits = dict(max_position=5.0, max_portfolio_risk=0.03)  # the position limit out of the way
    assert pb.account_entry_breaches({}, entry, prices, EQUITY, closes=closes, **limits) == []
    (line,) = pb.account_entry_breaches({"BBB": 1000.0}, entry, prices, EQUITY, closes=closes, **limits)
    assert line.startswith("account ex-ante daily volatility ") and line.endswith("> max_portfolio_risk 3%")
    with pytest.raises(pb.BookInputError, match="CCC"):
        pb.account_entry_breaches({"CCC": 10.0}, entry, prices, EQUITY, closes=closes, **limits)


def test_the_book_sums_a_symbol_over_the_strategies_holding_it():
    legs = pd.DataFrame(
        {
            "pair_id": ["KO-PEP", "distance/KO-PEP", "PG-WMT"],
            "strategy": ["garch_gru", "distance", "garch_gru"],
            "symbol": ["KO", "KO", "PG"],
            "shares": [-100.0, -90.0, 50.0],
            "notional": [-6000.0, -5400.0, 7500.0],
        }
    )
    assert pb.position_limit_breaches(legs, EQUITY, 0.10) == []  # each leg alone is within the limit
    (line,) = pb.symbol_limit_breaches(legs, EQUITY, 0.10)
    assert line == "account KO (KO-PEP -100, distance/KO-PEP -90): 11.40% of equity > 10%"
    # one strategy's two pairs sharing KO: its legs are bounded one by one (the walk-forward's sizing)
    assert pb.symbol_limit_breaches(legs.assign(strategy="garch_gru"), EQUITY, 0.10) == []


def test_the_book_tells_two_strategies_holding_the_same_pair_apart():
    assert book_pair_id("garch_gru", "KO-PEP") == "KO-PEP" and split_book_pair_id("KO-PEP") == ("garch_gru", "KO-PEP")
    assert book_pair_id("distance", "KO-PEP") == "distance/KO-PEP"
    assert split_book_pair_id("distance/KO-PEP") == ("distance", "KO-PEP")
    orders = pd.DataFrame(
        {
            "client_order_id": ["pairs-KO-PEP-y-1", "pairs-distance-KO-PEP-y-1"],
            "submitted_at": [pd.Timestamp("2022-12-29 15:00")] * 2,
            "strategy": ["garch_gru", "distance"],
            "pair_id": ["KO-PEP", "KO-PEP"],
            "leg": ["y", "y"],
            "symbol": ["KO", "KO"],
            "side": ["sell", "sell"],
            "qty": [10.0, 5.0],
            "reference_price": [60.0, 60.0],
            "fill_price": [60.0, 60.0],
            "status": ["filled", "filled"],
            "request": [
                '{"bar_timestamp": "2022-12-29T15:00:00+00:00", "on_drop": "keep", "max_holding": 20}',
                '{"bar_timestamp": "2022-12-29T15:00:00+00:00", "on_drop": "exit", "max_holding": 0}',
            ],
        }
    )
    fills = fills_from_orders(orders, {"distance/KO-PEP": "consumer"}, pd.Timestamp("2022-12-30", tz="UTC"))
    assert fills.set_index("pair_id")["qty"].to_dict() == {"KO-PEP": -10.0, "distance/KO-PEP": -5.0}
    assert fills.set_index("pair_id")["sector"].to_dict() == {"KO-PEP": "unknown", "distance/KO-PEP": "consumer"}
    assert strategy_rules(orders) == {"garch_gru": ("keep", 20), "distance": ("exit", 0)}
