"""Moved to :mod:`pairs_assets.instance.worker` (issue 20: the instance plugins in one package); this old
path stays importable and is the same module object."""

import sys

from pairs_assets.instance import worker as _moved

sys.modules[__name__] = _moved
