"""One BLAS thread for a long-running service.

The aggregator's numerical work is one thread's (the live aggregator's) beside the
ingest threads; a multi-threaded BLAS spins its idle threads between the many
small matrix products of the smoother and burns CPU for nothing (on the busy
store-day, more than the products themselves). The thread counts are read when
numpy is first imported, so this must run before that.
"""

from __future__ import annotations

import os
import sys

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def single_blas_thread() -> bool:
    """Ask for one BLAS thread unless the environment says otherwise; False if numpy
    was imported already (then it is too late, and nothing is changed)."""
    if "numpy" in sys.modules:
        return False
    for v in BLAS_THREAD_VARS:
        os.environ.setdefault(v, "1")
    return True
