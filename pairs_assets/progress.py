"""Moved to :mod:`pairs_assets.instance.progress` (issue 20: the instance plugins in one package); this old
path stays importable and is the same module object."""

import sys

from pairs_assets.instance import progress as _moved

sys.modules[__name__] = _moved
