"""Moved to :mod:`pairs_assets.instance.run_recovery` (issue 20: the instance plugins in one package); this old
path stays importable and is the same module object."""

import sys

from pairs_assets.instance import run_recovery as _moved

sys.modules[__name__] = _moved
