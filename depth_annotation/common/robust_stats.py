"""Robust spread: the median absolute deviation scaled to a Gaussian standard deviation."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

# 1 / Phi^-1(3/4): for Gaussian data, MAD * MAD_TO_SIGMA estimates sigma.
MAD_TO_SIGMA = 1.4826


def upper_median(a: NDArray[np.floating]) -> float:
    """Upper median by partition: O(n), no interpolation, for inner loops that need only speed."""
    k = a.size // 2
    return float(np.partition(a, k)[k])


def mad_sigma(values: ArrayLike, center: float | None = None, *, fast: bool = False) -> float:
    """Robust standard deviation of `values` about `center` (their median by default); NaN when empty.

    `fast` uses the upper median (no interpolation) for the medians, as iterative fits do.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return float("nan")
    median = upper_median if fast else (lambda a: float(np.median(a)))
    c = median(x) if center is None else center
    return float(MAD_TO_SIGMA * median(np.abs(x - c)))
