"""Pairwise scores of a clustering against true labels, for the address-chain benches.

Items are frames; a "pair" is two frames. Precision: of the pairs the chainer put in
one chain, the share that came from one device; recall: of the pairs that came from
one device, the share the chainer put in one chain; the adjusted Rand index (Hubert
and Arabie 1985) from the same contingency table, written with numpy (scikit-learn
is not a dependency; ``tests/test_address_chain.py`` checks it on textbook cases).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairScore", "pair_scores"]


@dataclass(frozen=True, slots=True)
class PairScore:
    precision: float
    recall: float
    ari: float
    clusters: int
    """distinct predicted labels"""
    devices: int
    """distinct true labels"""


def _pairs(counts: np.ndarray) -> float:
    c = counts.astype(np.float64)
    return float((c * (c - 1) / 2).sum())


def pair_scores(truth: Sequence[int], pred: Sequence[int]) -> PairScore:
    """Pairwise precision, recall and ARI of ``pred`` against ``truth`` (equal lengths).

    A precision with no predicted pairs, or a recall with no true pairs, is 1.0 (nothing
    to get wrong); the ARI of two identical trivial partitions is 1.0.
    """
    t = np.asarray(truth)
    p = np.asarray(pred)
    if t.shape != p.shape:
        raise ValueError("truth and pred must have the same length")
    n = len(t)
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    joint = np.unique(ti.astype(np.int64) * (int(pi.max(initial=0)) + 1) + pi, return_counts=True)[
        1
    ]
    both = _pairs(joint)
    same_t = _pairs(np.bincount(ti)) if n else 0.0
    same_p = _pairs(np.bincount(pi)) if n else 0.0
    total = n * (n - 1) / 2
    precision = both / same_p if same_p else 1.0
    recall = both / same_t if same_t else 1.0
    expected = same_t * same_p / total if total else 0.0
    top = (same_t + same_p) / 2
    ari = 1.0 if top == expected else (both - expected) / (top - expected)
    return PairScore(precision, recall, ari, len(np.unique(p)), len(np.unique(t)))
