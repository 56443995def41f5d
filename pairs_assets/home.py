"""``PairsHome``: the resource that tells the stages where the platform's state lives.

It carries what the assets used to read from the process-wide ``paths()``: the home folder, the
folder of the trading-config JSON files, the universe file and the history start. ``build_definitions``
makes one from a :class:`pairs_assets.settings.Paths` (:func:`pairs_assets.definitions.home_resource_for`); a test makes its own.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from pairs_assets.universe import Universe, load_universe


class PairsHome(dg.ConfigurableResource):
    """Where the platform's state lives and which universe and history it covers."""

    home: str = Field(description="PAIRS_HOME: walk-forward results, the MLflow store, the local SQLite store.")
    outputs_dir: str = Field(
        description="Folder of the trading configs' JSON files (<outputs_dir>/trading_config/<date>/<sector>.json)."
    )
    universe_file: str = Field(description="PAIRS_UNIVERSE_FILE: sectors → symbols (YAML).")
    history_start: str = Field(description="PAIRS_HISTORY_START: the first session of the history (YYYY-MM-DD).")

    def universe(self) -> Universe:
        """The universe file, read and validated."""
        return load_universe(self.universe_file)

    def trading_config_path(self, as_of: str, sector: str) -> Path:
        """``<outputs_dir>/trading_config/<as_of>/<sector>.json``."""
        return Path(self.outputs_dir) / "trading_config" / as_of / f"{sector}.json"
