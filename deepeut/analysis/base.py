"""The base of every per-frame analysis (the MDAnalysis ``AnalysisBase`` pattern).

A per-frame analysis accumulates sums frame by frame and turns them into results at the end. Subclasses implement
``_single_frame`` (histogram one :class:`Frame`) and ``result`` (normalise the sums); the base keeps the frame count
and the mean cell volume (Å³) that every density normalisation needs. The analysis pass
(deepeut.analysis.series.build_cache) feeds all of them from one streamed read of the trajectory; ``run`` feeds
any iterable of frames (tests, the validation stage's Li–O structure, CoM RDFs from the cache).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import numpy as np


@dataclass
class Frame:
    """One trajectory frame: atom positions (n, 3) Å, cell (3, 3) Å (rows are the box vectors) and, when the
    analysis needs them, molecule centres of mass (M, 3) Å."""

    positions: np.ndarray
    cell: np.ndarray
    com: Optional[np.ndarray] = None


class FrameAnalysis(ABC):
    """Accumulates one quantity over frames; ``n_frames`` frames seen so far, ``volume_sum`` their volumes (Å³)."""

    n_frames: int = 0
    volume_sum: float = 0.0

    def add(self, frame: Frame) -> None:
        """Count ``frame`` and accumulate it."""
        self.n_frames += 1
        self.volume_sum += abs(float(np.linalg.det(frame.cell)))
        self._single_frame(frame)

    def run(self, frames: Iterable[Frame]) -> Any:
        """Accumulate every frame of ``frames``, then return :meth:`result`."""
        for frame in frames:
            self.add(frame)
        return self.result()

    @property
    def mean_volume(self) -> float:
        """Mean cell volume (Å³) of the frames seen (0 before the first)."""
        return self.volume_sum / max(self.n_frames, 1)

    @abstractmethod
    def _single_frame(self, frame: Frame) -> None:
        """Accumulate one frame."""

    @abstractmethod
    def result(self) -> Any:
        """The normalised result of the frames seen so far."""
