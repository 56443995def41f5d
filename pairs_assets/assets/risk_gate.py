"""The gate the signal job asks before opening a position: the paper book's exposure check.

``paper_book``'s ``exposure_within_limits`` is an ERROR check; "blocking" for the live path means
more than Dagster's blocking (which only stops downstream steps of the same run): while the check's
latest evaluation failed, :func:`pairs_assets.assets.trading_signals.trading_signals` sends no order
that opens or reverses into a position. Exits and stops still go out — they only reduce exposure.
The block lifts when the book is marked again and the check passes.

One account, one set of limits: the book marks every strategy's orders together, so a failed check
refuses every strategy's entries, whichever strategy's positions breached. Before each entry the
signal job also asks the account's limits directly (:class:`pairs_assets.assets.trading_signals.AccountGate`:
every strategy's held positions and the entry's, against the strategy settings' ``max_position`` and
``max_portfolio_risk``), so an entry is refused the moment it would breach, not only after the next mark.
"""

import dagster as dg

EXPOSURE_CHECK = dg.AssetCheckKey(dg.AssetKey("paper_book"), "exposure_within_limits")


def exposure_block(instance: dg.DagsterInstance) -> str | None:
    """Why new entries are refused, or None: the latest evaluation of ``paper_book``'s
    ``exposure_within_limits`` (whatever its session: the most recent one recorded) failed."""
    record = instance.get_latest_asset_check_evaluation_record(EXPOSURE_CHECK)
    if record is None or record.status.value != "FAILED":  # PLANNED (running) or SUCCEEDED: not blocked
        return None
    evaluation = record.event.asset_check_evaluation if record.event is not None else None
    where = f" (session {record.partition})" if record.partition else ""
    detail = ""
    if evaluation is not None and "breaches" in evaluation.metadata:
        detail = ": " + str(evaluation.metadata["breaches"].value).replace("\n", "; ").replace("- ", "")
    return f"paper_book exposure_within_limits failed{where}{detail}"
