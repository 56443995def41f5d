"""Settings read from the environment once, in ``Paths`` (docs/architecture.md, "Settings, paths and the environment")."""

from pairs_assets.settings import Paths


def test_sqlite_fsync_is_a_paths_setting():
    assert Paths.from_env({}).sqlite_fsync is False
    assert Paths.from_env({"PAIRS_SQLITE_FSYNC": "1"}).sqlite_fsync is True
    assert Paths.from_env({"PAIRS_SQLITE_FSYNC": "0"}).sqlite_fsync is False
