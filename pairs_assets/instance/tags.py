"""Dagster's run tags that name a run's partitions, for the code that reads or writes them.

The constants live in ``dagster._core.storage.tags`` (no public export in Dagster 1.13); this is the
one place outside Dagster that imports them (``PRIVATE_API.md``). ``dagster/asset_partition_range_start``
and ``…_end`` mark a single-run backfill over a partition range; ``dagster/partition`` a one-partition run.
"""

from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)

__all__ = ["ASSET_PARTITION_RANGE_END_TAG", "ASSET_PARTITION_RANGE_START_TAG", "PARTITION_NAME_TAG"]
