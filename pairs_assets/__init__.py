"""pairs_assets: a Dagster asset graph from raw price bars to a daily pairs-trading config."""
