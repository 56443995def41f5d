"""The GARCH stage on the batched estimator (issue 10 item 4) keeps the trading configs (the issue's "Keep").

Before: ``garch_stage(..., estimator="arch")`` — arch pair by pair, what the stage did until now.
After: the default, one :func:`pairs_assets.quant.garch.fit_garch_many` call per partition (the
walk-forward: per block of formation sessions, ``garch_stage_many``). The
configs of sampled partitions (real embedded closes, the walk-forward's config builder — the
daily graph's own stage functions, parity-tested against it in test_walk_forward.py) must select
the same pairs in the same order with every field equal, except the numbers derived from the
GARCH fit, which may differ by the two optimisers' stopping points (SLSQP vs Newton on the same
likelihood) within the tolerances below — the decision documented in docs/benchmarks.md and docs/methodology.md:

* GARCH parameters μ, ω, α, β, persistence: relative 5e-3 (a flat likelihood ridge);
* σ forecast, σ_∞ and the sizing built on the σ forecast: relative 1e-3;
* scores (aic, forecast, diagnostic, composite): absolute 1e-4; ranks equal.
"""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from pairs_assets import partitions
from pairs_assets.quant import stages
from pairs_assets.quant.walkforward import replay
from pairs_assets.quant.walkforward.replay import SectorPanel, build_configs
from pairs_assets.settings import EMBEDDED_BARS_FILE, EMBEDDED_HISTORY_START, StrategySettings

PERIODIC = {
    "reselect_every": 5,
    "formation_window": 120,
    "causal_hedge": True,
    "backtest_before_formation": True,
    "backtest_lag": 1,
    "backtest_cost_bp": 5.0,
}
GARCH_PARAMS = ("mu", "omega", "alpha", "beta", "persistence")


def _panel(sector, symbols, date, strategy):
    sessions = partitions.window_sessions(date, strategy.history_sessions, history_start=EMBEDDED_HISTORY_START)
    closes = pd.read_csv(EMBEDDED_BARS_FILE, index_col="Date", parse_dates=True, usecols=["Date", *symbols])
    return SectorPanel(sector, closes.reindex(sessions)[sorted(symbols)], "embedded"), sessions


def _configs(monkeypatch, estimator, panel, sessions, n, symbols, strategy):
    monkeypatch.setattr(replay, "garch_stage_many", functools.partial(stages.garch_stage_many, estimator=estimator))
    as_of = list(sessions[-n:])

    def formation_of(day):
        return partitions.formation_session(day, strategy.reselect_every)

    effective = [partitions.next_session(str(d.date())) for d in as_of]
    return build_configs(panel, as_of, effective, symbols, strategy, formation_of=formation_of)


def _assert_same_config(before: dict, after: dict, where: str) -> int:
    assert [p["pair_id"] for p in after["pairs"]] == [p["pair_id"] for p in before["pairs"]], where
    for a, b in zip(after["pairs"], before["pairs"]):
        a, b = dict(a), dict(b)
        ga, gb = a.pop("garch"), b.pop("garch")
        for key in gb:
            rel = 5e-3 if key in GARCH_PARAMS else 1e-3
            assert ga[key] == pytest.approx(gb[key], rel=rel), (where, a["pair_id"], key)
        sa, sb = a.pop("sizing"), b.pop("sizing")
        for key in sb:
            assert sa[key] == pytest.approx(sb[key], rel=1e-3), (where, a["pair_id"], key)
        ca, cb = a.pop("scores"), b.pop("scores")
        assert ca["rank"] == cb["rank"]
        for key in cb:
            assert ca[key] == pytest.approx(cb[key], abs=1e-4), (where, a["pair_id"], key)
        assert a == b, where  # legs, β, spread statistics, levels, model block: byte for byte
    rest_a = {k: v for k, v in after.items() if k != "pairs"}
    rest_b = {k: v for k, v in before.items() if k != "pairs"}
    assert rest_a == rest_b, where
    return len(after["pairs"])


@pytest.mark.parametrize(
    "sector, symbols, date, sessions, overrides",
    [
        ("consumer", ("BBY", "HD", "KO", "PEP", "PG", "WMT"), "2022-12-16", 12, {}),  # 2022-12-14: KO-PG selected
        ("healthcare", ("JNJ", "LLY", "MRK", "PFE", "UNH"), "2022-12-28", 5, {}),
        ("energy", ("CVX", "RRC", "XOM"), "2022-12-28", 3, {}),
        ("financial", ("BAC", "JPM"), "2022-12-15", 6, PERIODIC),
    ],
)
def test_configs_before_and_after_the_batched_garch(monkeypatch, sector, symbols, date, sessions, overrides):
    strategy = StrategySettings.preset("seed", **overrides)
    panel, window = _panel(sector, symbols, date, strategy)
    before = _configs(monkeypatch, "arch", panel, window, sessions, symbols, strategy)
    after = _configs(monkeypatch, "batched", panel, window, sessions, symbols, strategy)
    assert list(after) == list(before)
    selected = sum(
        _assert_same_config(before[d].document(), after[d].document(), f"{d.date()}|{sector}") for d in before
    )
    if sector == "consumer":
        assert [p["pair_id"] for p in after[pd.Timestamp("2022-12-14")].document()["pairs"]] == ["KO-PG"]
        assert selected > 0


def test_garch_stage_records_its_estimator_and_agrees_with_arch():
    strategy = StrategySettings.preset("seed")
    symbols = ("BBY", "HD", "KO", "PEP", "PG", "WMT")
    panel, window = _panel("consumer", symbols, "2022-12-14", strategy)
    closes = panel.closes.iloc[-strategy.garch_sessions :]
    pairs = pd.DataFrame(
        [(f"{y}-{x}", y, x) for i, y in enumerate(sorted(symbols)) for x in sorted(symbols)[i + 1 :]],
        columns=["pair_id", "y", "x"],
    )
    import numpy as np

    from pairs_assets.quant.cointegration import hedge_ratio

    logs = np.log(closes.iloc[-strategy.formation_window :])
    pairs[["hedge_ratio", "intercept"]] = [
        hedge_ratio(logs[y].to_numpy(), logs[x].to_numpy()) for y, x in zip(pairs["y"], pairs["x"])
    ]
    batched = stages.garch_stage(closes, pairs, strategy)
    arch = stages.garch_stage(closes, pairs, strategy, estimator="arch")
    assert list(batched.columns) == stages.GARCH_COLUMNS and "estimator" in batched
    assert set(arch["estimator"]) == {"arch"}
    assert set(batched["estimator"]) <= {"batched", "arch", "arch/batched", "batched/arch"} and "batched" in set(
        batched["estimator"]
    )
    np.testing.assert_allclose(batched["loglik"], arch["loglik"], atol=1e-3)
    assert list(batched["pair_id"]) == list(pairs["pair_id"])
    assert stages.empty_garch_frame().columns.tolist() == stages.GARCH_COLUMNS
    # many partitions in one call: each frame equals its own garch_stage call
    half = pairs.iloc[:7].reset_index(drop=True), pairs.iloc[7:].reset_index(drop=True)
    many = stages.garch_stage_many(
        [stages.garch_series(closes, p, strategy) for p in (*half, pairs.iloc[0:0])], [*half, pairs.iloc[0:0]], strategy
    )
    pd.testing.assert_frame_equal(pd.concat(many[:2], ignore_index=True), batched)
    assert many[2].empty and list(many[2].columns) == stages.GARCH_COLUMNS
    with pytest.raises(ValueError, match="estimator"):
        stages.garch_stage(closes, pairs, strategy, estimator="numba")
