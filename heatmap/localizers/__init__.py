"""Localization strategies, one per module, all with the same ``locate`` signature.

>>> sorted(STRATEGIES)
['grid', 'trilateration', 'weighted_centroid']
"""

from __future__ import annotations

import importlib
from typing import Any

STRATEGIES: dict[str, str] = {
    "grid": "heatmap.localizers.grid_posterior",
    "weighted_centroid": "heatmap.localizers.weighted_centroid",
    "trilateration": "heatmap.localizers.trilateration",
}
"""strategy name → module (imported when asked for)"""


def get(name: str) -> Any:
    """The ``locate`` function of strategy ``name``."""
    try:
        return importlib.import_module(STRATEGIES[name]).locate
    except KeyError:
        raise KeyError(f"no localization strategy {name!r} (have {sorted(STRATEGIES)})") from None
