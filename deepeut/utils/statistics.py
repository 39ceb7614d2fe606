"""Standard errors every stage may use: of independent estimates, and of a time series by block averages."""

from __future__ import annotations

import numpy as np


def block_error(values: np.ndarray) -> float:
    """Standard error of the mean of independent block (or replica) estimates."""
    values = np.asarray([v for v in values if np.isfinite(v)], float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def mean_and_sem(x: np.ndarray, n_blocks: int = 5) -> tuple:
    """Mean and its standard error from block averages (robust to time correlation); short series: per sample."""
    x = np.asarray(x, float)
    blocks = x if len(x) < 2 * n_blocks else np.array([b.mean() for b in np.array_split(x, n_blocks)])
    return float(x.mean()), block_error(blocks)
