"""The built-in strategies, registered through the entry points of any other strategy
(``pyproject.toml``, group ``pairs_assets.strategies``): ``garch_gru``, ``seed`` and ``baseline``.

Defined in :mod:`pairs_assets.quant.walkforward.builtin_strategies` (the walk-forward engine's
legacy run is made of them, and the numerics import nothing above them).
"""

from pairs_assets.quant.walkforward.builtin_strategies import (
    BaselineParams,
    BaselineStrategy,
    GarchGruStrategy,
    SeedParams,
    SeedStrategy,
)

__all__ = ["BaselineParams", "BaselineStrategy", "GarchGruStrategy", "SeedParams", "SeedStrategy"]
