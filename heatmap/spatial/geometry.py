"""Vectorized plane geometry used on hot paths (radio prediction, motion graph).

Hand-written with numpy because shapely's per-geometry calls cost ~µs each and
these run over millions of (point, node) pairs; see bench/localize.py.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F = NDArray[np.float64]


def segments_cross(p: F, q: F, a: F, b: F) -> NDArray[np.bool_]:
    """Whether segment p→q properly crosses segment a→b, broadcast.

    ``p, q``: (..., 2) arrays; ``a, b``: (2,) arrays (one wall). Touching at an
    end point does not count as crossing.
    """
    d1 = _orient(a, b, p)
    d2 = _orient(a, b, q)
    d3 = _orient(p, q, a)
    d4 = _orient(p, q, b)
    return (d1 * d2 < 0) & (d3 * d4 < 0)


def _orient(a: F, b: F, c: F) -> F:
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (
        c[..., 0] - a[..., 0]
    )


def wall_loss(p: F, q: F, walls: list[tuple[tuple[float, float], tuple[float, float], float]]) -> F:
    """Summed attenuation (dB) of the walls each segment p→q crosses.

    ``p``, ``q``: (..., 2); ``walls``: (a, b, attenuation_db) triples.
    """
    shape = np.broadcast_shapes(p.shape, q.shape)[:-1]
    loss = np.zeros(shape)
    for a, b, att in walls:
        loss += att * segments_cross(p, q, np.asarray(a, float), np.asarray(b, float))
    return loss


def wall_crossings(
    p: F, q: F, walls: list[tuple[tuple[float, float], tuple[float, float], float]]
) -> NDArray[np.float64]:
    """Which walls each segment p→q crosses, as a 0/1 matrix over the last axis.

    ``p``, ``q``: (..., 2) broadcastable; returns (..., len(walls)). The radio
    model's wall loss is this matrix times the walls' attenuations (dB), which is
    how calibration fits one attenuation per wall by linear least squares.
    """
    shape = np.broadcast_shapes(p.shape, q.shape)[:-1]
    out = np.zeros((*shape, len(walls)))
    for i, (a, b, _att) in enumerate(walls):
        out[..., i] = segments_cross(p, q, np.asarray(a, float), np.asarray(b, float))
    return out
