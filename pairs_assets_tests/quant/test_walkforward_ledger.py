"""The trials ledger: which recorded runs are trials on the selection range, distinct configurations,
N and V for the deflated Sharpe, and the engine using them."""

import math

import numpy as np
import pytest

from pairs_assets.quant.walkforward.ledger import Trial, count_trials, evaluated_label, trial_key, trials_from_runs
from pairs_assets.quant.walkforward.metrics import deflated_sharpe_ratio

DEV = ("1995-01-03", "2010-12-31")
TRADE = {"lag": 1, "on_drop": "keep", "max_holding": 20}


def run(
    run_id, start, end, sharpe, *, when=0, periods=(), gru=False, formation=252, costs=(5.0,), label="full", **strategy
):
    params = {
        "wf.start": start,
        "wf.end": end,
        "wf.lag": "1",
        "wf.on_drop": "keep",
        "wf.max_holding": "20",
        "wf.gru": str(gru),
        "wf.periods": str([list(p) for p in periods]),
        "strategy.formation_window": str(formation),
        **{f"strategy.{k}": str(v) for k, v in strategy.items()},
    }
    metrics = {f"default.{c:g}bp.{label}.sharpe": sharpe + c / 100 for c in costs}
    metrics.update({f"baseline.{c:g}bp.{label}.sharpe": -1.0 for c in costs})
    if gru:
        metrics.update({f"default_gru.{c:g}bp.{label}.sharpe": sharpe - 0.2 for c in costs})
    return {"run_id": run_id, "start_time": when, "params": params, "metrics": metrics}


def test_which_runs_evaluated_the_selection_range():
    assert evaluated_label("1995-01-03", "2010-12-31", [], DEV) == "full"
    assert evaluated_label("1995-03-23", "2010-12-31", [], DEV) == "full"  # the GRU's later start
    split = [("2011-2022", "2011-01-01", "2022-12-31"), ("1995-2010", "1995-01-01", "2010-12-31")]
    assert evaluated_label("1995-01-03", "2022-12-28", split, DEV) == "1995-2010"
    assert evaluated_label("1995-01-03", "2022-12-28", [("2011-2022", "2011-01-01", "2022-12-31")], DEV) is None
    assert evaluated_label("2003-01-02", "2010-12-31", [], DEV) is None  # half the years: not the same trial
    assert evaluated_label("2011-01-03", "2022-12-28", [], DEV) is None


def test_distinct_configurations_on_the_range_are_the_trials():
    split = [("1995-2010", "1995-01-01", "2010-12-31")]
    runs = [
        run("a", "1995-01-03", "2010-12-31", 0.50, when=1),
        run(
            "b", "1995-01-03", "2022-12-28", 0.60, when=2, periods=split, label="1995-2010"
        ),  # same config: latest wins
        run("c", "1995-01-03", "2010-12-31", -0.20, when=3, formation=126),
        run("d", "2011-01-03", "2022-12-28", 3.00, when=4, formation=63),  # held-out only: no trial
        run("e", "1995-03-23", "2010-12-31", 0.40, when=5, formation=189, gru=True),  # two variants
        {"run_id": "f", "params": {"wf.start": "1995-01-03"}, "metrics": {}},  # incomplete: skipped
    ]
    trials = trials_from_runs(runs, DEV)
    assert [t.run_id for t in trials] == ["b", "c", "e", "e"]
    assert [t.sharpe[5.0] for t in trials] == pytest.approx([0.65, -0.15, 0.45, 0.2])
    assert trials[0].key == trial_key({"formation_window": 252}, TRADE, "default")
    assert len({t.key for t in trials}) == 4
    count = count_trials(trials)
    assert (count.n_trials, count.source) == (4, "ledger")
    assert count.variance[5.0] == pytest.approx(np.var([0.65, -0.15, 0.45, 0.2], ddof=1) / 252, rel=1e-12)
    assert count.sharpe_sd(5.0) == pytest.approx(np.std([0.65, -0.15, 0.45, 0.2], ddof=1), rel=1e-12)


def test_the_current_run_counts_once_and_an_override_keeps_the_ledgers_variance():
    recorded = [Trial("k1", {5.0: 0.5}), Trial("k2", {5.0: -0.1})]
    again = count_trials(recorded, [Trial("k1", {5.0: 0.7})])  # the same configuration rerun
    assert again.n_trials == 2 and again.variance[5.0] == pytest.approx(np.var([0.7, -0.1], ddof=1) / 252)
    new = count_trials(recorded, [Trial("k3", {5.0: 0.9})])
    assert new.n_trials == 3
    forced = count_trials(recorded, override=11)
    assert (forced.n_trials, forced.source) == (11, "override")
    assert forced.variance[5.0] == pytest.approx(np.var([0.5, -0.1], ddof=1) / 252)
    alone = count_trials([], [Trial("k1", {5.0: 0.5})])
    assert alone.n_trials == 1 and math.isnan(alone.variance[5.0])
    assert count_trials([]).source == "none"
    with pytest.raises(ValueError, match="override must be an integer >= 1"):
        count_trials(recorded, override=0)


def test_more_dispersed_trials_deflate_more():
    # the DSR's benchmark grows with the trials' spread: same N, same selected Sharpe
    narrow = count_trials([Trial(f"k{i}", {5.0: s}) for i, s in enumerate([0.6, 0.5, 0.55, 0.65])])
    wide = count_trials([Trial(f"k{i}", {5.0: s}) for i, s in enumerate([0.6, -0.5, 0.1, 0.9])])
    sharpe = 0.6 / math.sqrt(252)
    assert deflated_sharpe_ratio(sharpe, 4000, 0.0, 3.0, 4, wide.variance[5.0]) < deflated_sharpe_ratio(
        sharpe, 4000, 0.0, 3.0, 4, narrow.variance[5.0]
    )


def test_a_configuration_that_never_traded_is_a_trial_with_sharpe_zero():
    never = run("n", "1995-01-03", "2010-12-31", 0.0, formation=126)
    never["metrics"] = {"default.5bp.full.trades": 0.0, "default.5bp.full.ann_return": 0.0}  # no Sharpe logged (NaN)
    traded = run("t", "1995-01-03", "2010-12-31", 0.5)
    trials = trials_from_runs([never, traded], DEV)
    assert [t.sharpe for t in trials] == [{5.0: 0.0}, {5.0: pytest.approx(0.55)}]


def test_formation_phase_0_is_the_trial_recorded_before_the_setting_existed():
    """A run recorded before ``formation_phase`` existed (no such param) and one after at phase 0
    are one configuration; another phase is another trial."""
    from pairs_assets.quant.walkforward.ledger import trial_key

    trade = {"lag": 1, "on_drop": "keep", "max_holding": 20}
    before = {"correlation_min": 0.7, "reselect_every": 21}
    assert trial_key({**before, "formation_phase": 0}, trade, "default") == trial_key(before, trade, "default")
    assert trial_key({**before, "formation_phase": 3}, trade, "default") != trial_key(before, trade, "default")
